package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/stagely/stagely/app/childproc"
)

// process is a Stagely binary the demo started; its output goes to a log file in the workdir.
type process struct {
	*childproc.Process
	name    string
	logPath string
}

// startProcess starts path with exactly env (plus nothing inherited) and returns once it runs.
func startProcess(name, path string, args, env []string, logPath string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// The child writes to its own copy of the descriptor: the demo's is closed once it runs.
	defer f.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	proc, err := childproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &process{Process: proc, name: name, logPath: logPath}, nil
}

// exitedErr returns why the process ended, or nil while it runs.
func (p *process) exitedErr() error {
	select {
	case <-p.Done():
		return fmt.Errorf("%s exited (%v); its last lines (%s):\n%s", p.name, p.Err(), p.logPath, p.tail(25))
	default:
		return nil
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// childEnv is the environment of a started binary: only what the docker CLI and compose
// plugin need from the demo's own environment (PATH, HOME for ~/.docker/cli-plugins, and
// the engine's address), plus the Stagely settings.
func childEnv(getenv func(string) string, settings ...string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, settings...)
}
