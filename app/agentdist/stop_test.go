package agentdist_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stopScript is install.sh's stop_background and the functions it calls, with a grace of
// graceSeconds, run against pidPath.
func stopScript(t *testing.T, pidPath string, graceSeconds int) string {
	t.Helper()
	b, err := os.ReadFile("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	from, to := strings.Index(s, "# running PID is true"), strings.Index(s, "start_agent() {")
	if from < 0 || to < from {
		t.Fatal("install.sh no longer has running() followed by start_agent()")
	}
	return "set -eu\nsay() { printf '%s\\n' \"$*\" >&2; }\ndie() { say \"error: $*\"; exit 1; }\n" +
		"pid_path='" + pidPath + "'\nstop_grace=" + strconv.Itoa(graceSeconds) + "\n" + s[from:to] + "stop_background\n"
}

// An upgrade with --start must not start a second agent beside the old one: an agent that
// outlasts its grace is killed before stop_background returns.
func TestInstallScript_StopBackgroundLeavesNoAgentRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		onTerm   string // the old agent's trap for SIGTERM
		grace    int    // seconds; the shell runs the trap only after its sleep 1
		wantKill bool
	}{
		{"agent that stops on SIGTERM", "exit 0", 60, false},
		{"agent that ignores SIGTERM", "", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// The name matters: stop_background only stops a process whose command line says stagely-agent.
			agent := filepath.Join(dir, "stagely-agent")
			script := "#!/bin/sh\ntrap '" + tc.onTerm + "' TERM\necho ready\nwhile :; do sleep 1; done\n"
			if err := os.WriteFile(agent, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			old := exec.Command(agent)
			stdout, err := old.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := old.Start(); err != nil {
				t.Fatal(err)
			}
			// The trap is set once it says so.
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
				_ = old.Process.Kill()
				_ = old.Wait()
				t.Fatalf("old agent said %q, %v", line, err)
			}
			exited := make(chan error, 1)
			go func() { exited <- old.Wait() }()
			t.Cleanup(func() {
				_ = old.Process.Kill()
				<-exited
			})
			pidPath := filepath.Join(dir, "stagely-agent.pid")
			if err := os.WriteFile(pidPath, []byte(strconv.Itoa(old.Process.Pid)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("sh", "-c", stopScript(t, pidPath, tc.grace)).CombinedOutput()
			if err != nil {
				t.Fatalf("stop_background: %v\n%s", err, out)
			}
			if killed := strings.Contains(string(out), "killing it"); killed != tc.wantKill {
				t.Errorf("stop_background said %q; killed %v, want %v", out, killed, tc.wantKill)
			}
			// stop_background has returned: the old agent must be gone, not merely signalled.
			if alive(old.Process.Pid) {
				t.Fatalf("the old agent still runs after stop_background:\n%s", out)
			}
			if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file left behind: %v", err)
			}
		})
	}
}

// alive reports whether pid runs: a killed child the test has not reaped yet is a zombie.
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(st), ") Z ")
}
