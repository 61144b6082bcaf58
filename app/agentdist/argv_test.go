package agentdist_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestInstallScript_PassesTheTokenToNoOtherProgram: whatever way the token reaches
// install.sh, no program it runs (curl, sha256sum, the agent ...) gets it on its command
// line, where ps and process accounting show it, or in its environment; it reaches only
// config.json. strace records every execve of the install, arguments and environment.
func TestInstallScript_PassesTheTokenToNoOtherProgram(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace is not installed, and it records what install.sh runs: apt-get install strace (scripts/ensure-debian-tools.sh does)")
	}
	bins := t.TempDir()
	buildAgent(t, runtime.GOARCH, bins)
	srv, _ := serve(t, nil, bins, nil)
	_, script := get(t, srv.URL+"/install.sh")
	const token = "stgb_9_dG9rZW4tdGhhdC1tdXN0LXN0YXktc2VjcmV0"
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"token in STAGELY_TOKEN", nil, []string{"STAGELY_TOKEN=" + token}},
		{"token given with --token", []string{"--token", token}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, trace := t.TempDir(), filepath.Join(t.TempDir(), "execve")
			args := append([]string{"-f", "-v", "-s", "4096", "-e", "trace=execve", "-o", trace, "sh", "-s", "--", "--root", root}, tc.args...)
			cmd := exec.Command("strace", args...)
			cmd.Env = append(os.Environ(), tc.env...)
			cmd.Stdin = bytes.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("install.sh: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			execs := 0
			for i, line := range strings.Split(string(raw), "\n") {
				if !strings.Contains(line, "execve(") {
					continue
				}
				execs++
				// The first is sh itself, started with the token as the test's caller chose.
				if i > 0 && strings.Contains(line, token) {
					t.Errorf("a program install.sh ran got the token: %s", line)
				}
			}
			if execs < 10 {
				t.Fatalf("strace recorded %d programs, want what install.sh ran:\n%s", execs, raw)
			}
			cfg, err := os.ReadFile(filepath.Join(root, "etc/stagely/config.json"))
			if err != nil || !bytes.Contains(cfg, []byte(`"token":"`+token+`"`)) {
				t.Fatalf("config.json = %s (%v), want the token in it", cfg, err)
			}
		})
	}
}
