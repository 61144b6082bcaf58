package apptest

import (
	"fmt"
	"os"
	"path/filepath"
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

// Binaries are a server and an agent binary built before the test ran.
type Binaries struct {
	Server, Agent string
	// Version is what their --version says after the name ("" when the environment does not say).
	Version string
}

// PrebuiltBinaries returns the binaries the environment names, and false when it names none,
// so the caller builds its own. Naming one without the other, or a path that is not a file,
// is an error: a test would otherwise run something other than what its caller built.
func PrebuiltBinaries(getenv func(string) string) (Binaries, bool, error) {
	b := Binaries{Server: getenv(EnvServerBin), Agent: getenv(EnvAgentBin), Version: getenv(EnvBinVersion)}
	if b.Server == "" && b.Agent == "" {
		return Binaries{}, false, nil
	}
	for name, path := range map[string]*string{EnvServerBin: &b.Server, EnvAgentBin: &b.Agent} {
		if *path == "" {
			return Binaries{}, false, fmt.Errorf("%s and %s go together: set both or neither", EnvServerBin, EnvAgentBin)
		}
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
