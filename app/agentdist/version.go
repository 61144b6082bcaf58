package agentdist

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// VersionFile is the file beside the binaries that names their version: make build writes
// the version it stamps into them (-X main.version) there, since the server cannot run a
// binary of another platform to ask it.
const VersionFile = "VERSION"

// maxVersionBytes matches the agent's bound on HELLO's agent_version.
const maxVersionBytes = 256

// readVersion reads VersionFile; "" when there is none (self-update is then off).
func readVersion(files fs.FS) (string, error) {
	b, err := fs.ReadFile(files, VersionFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the agent binaries' %s: %w", VersionFile, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" || len(v) > maxVersionBytes || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", fmt.Errorf("the agent binaries' %s holds %.64q: want one version of printable characters, at most %d bytes", VersionFile, v, maxVersionBytes)
	}
	return v, nil
}

// Version is the version of the binaries served (VersionFile), or "" when unknown: the
// server then offers no self-update.
func (d *Dist) Version() string { return d.version }

// Path is where an agent downloads the binary for arch, relative to the server's URL.
func Path(arch string) string { return "/agent/download/linux/" + arch }
