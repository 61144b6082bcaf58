package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// process is a Stagely binary the demo started; its output goes to a log file in the workdir.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	err     error // set before done is closed
}

// startProcess starts path with exactly env (plus nothing inherited) and returns once it runs.
// A goroutine waits for it and closes done; stop (or the process ending) is its exit.
func startProcess(name, path string, args, env []string, logPath string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	p := &process{name: name, cmd: exec.Command(path, args...), logPath: logPath, logFile: f, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exitedErr returns why the process ended, or nil while it runs.
func (p *process) exitedErr() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its last lines (%s):\n%s", p.name, p.err, p.logPath, p.tail(25))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
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
