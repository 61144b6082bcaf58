package apptest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The variables naming binaries `make build` produced, for the tests that run the server and
// the agent as processes (app/e2e, the demo's): with them set, those tests run these instead
// of building their own, which costs minutes of CPU per package on a fresh machine.
const (
	EnvServerBin = "STAGELY_SERVER_BIN"
	EnvAgentBin  = "STAGELY_AGENT_BIN"
	// EnvBinVersion is the version the binaries were stamped with (make's VERSION).
	EnvBinVersion = "STAGELY_BIN_VERSION"
)

// Binaries are a server and an agent binary built before the tests ran.
type Binaries struct {
	Server, Agent string
	// Version is what their --version says after the name ("" when the builder stamped none).
	Version string
}

// PrebuiltBinaries returns the binaries the environment names, and false when it names none,
// so the caller builds its own. Naming one without the other or without their version, or a
// path that is not a file, is an error: a test would otherwise run something other than what
// its caller built.
func PrebuiltBinaries(getenv func(string) string) (Binaries, bool, error) {
	b := Binaries{Server: getenv(EnvServerBin), Agent: getenv(EnvAgentBin), Version: getenv(EnvBinVersion)}
	if b.Server == "" && b.Agent == "" {
		return Binaries{}, false, nil
	}
	if b.Server == "" || b.Agent == "" || b.Version == "" {
		return Binaries{}, false, fmt.Errorf("%s, %s and %s go together: set all three or none", EnvServerBin, EnvAgentBin, EnvBinVersion)
	}
	for name, path := range map[string]*string{EnvServerBin: &b.Server, EnvAgentBin: &b.Agent} {
		abs, err := filepath.Abs(*path)
		if err != nil {
			return Binaries{}, false, fmt.Errorf("%s=%s: %w", name, *path, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return Binaries{}, false, fmt.Errorf("%s: %w (run make build)", name, err)
		}
		if !fi.Mode().IsRegular() {
			return Binaries{}, false, fmt.Errorf("%s=%s is not a file", name, *path)
		}
		*path = abs
	}
	return b, true, nil
}

// RunWithBinaries is the TestMain of a package whose tests run the binaries: it sets *bin to
// the prebuilt ones, or to the ones build makes in a temporary directory (removed after the
// run), then runs the tests and returns their exit code.
func RunWithBinaries(m *testing.M, bin *Binaries, build func(dir string) (Binaries, error)) int {
	b, ok, err := PrebuiltBinaries(os.Getenv)
	if err == nil && !ok {
		var dir string
		if dir, err = os.MkdirTemp("", "stagely-bin"); err == nil {
			defer os.RemoveAll(dir)
			b, err = build(dir)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*bin = b
	return m.Run()
}
