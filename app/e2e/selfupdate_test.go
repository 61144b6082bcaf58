package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

const (
	olderVersion  = "v0.0.1-e2e-old"
	servedVersion = "v0.0.2-e2e-new"
)

// buildAgents links the agent twice into dir, stamped with an older and the served
// version: only the link step runs again, the packages come from the build cache.
func buildAgents(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, v := range []string{olderVersion, servedVersion} {
		path := filepath.Join(dir, "stagely-agent-"+v)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+v, "-o", path, "./cmd/stagely-agent")
		cmd.Dir = "../../agent"
		b, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("build the agent stamped %s: %v\n%s", v, err, b)
		}
		if out[v], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// updateStack is a stack whose server serves binary as the agent build servedVersion, with
// the agent stamped olderVersion installed in a directory of its own (it replaces itself).
type updateStack struct {
	*stack
	distDir string
	exe     string
	old     []byte
}

func newUpdateStack(t *testing.T, builds map[string][]byte, binary []byte) *updateStack {
	t.Helper()
	u := &updateStack{distDir: t.TempDir(), exe: filepath.Join(t.TempDir(), "stagely-agent"), old: builds[olderVersion]}
	writeFile(t, filepath.Join(u.distDir, "stagely-agent-linux-"+runtime.GOARCH), binary, 0o755)
	writeFile(t, filepath.Join(u.distDir, "VERSION"), []byte(servedVersion+"\n"), 0o644)
	u.stack = newStack(t, stackOptions{noAgent: true, serverEnv: []string{"STAGELY_AGENT_DIR=" + u.distDir}})
	writeFile(t, u.exe, u.old, 0o755)
	return u
}

// start runs the installed agent and waits for its first HELLO.
func (u *updateStack) start() int {
	u.t.Helper()
	u.agent = startProcess(u.t, "stagely-agent", u.exe, u.agentEnv)
	waitFor(u.t, time.Minute, "the old agent online", func() bool {
		a, err := u.st.AgentByID(u.ctx, u.agentRow.ID)
		return err == nil && a.Status != store.AgentOffline
	})
	return u.agent.Pid()
}

// wantOldAgentRunning checks the agent still runs its old build, as the same process.
func (u *updateStack) wantOldAgentRunning(pid int) {
	u.t.Helper()
	select {
	case <-u.agent.Done():
		u.t.Fatalf("the agent exited:\n%s", tail(u.agent.out.String(), 50))
	default:
	}
	if u.agent.Pid() != pid {
		u.t.Fatalf("agent pid %d, want %d", u.agent.Pid(), pid)
	}
	if b, err := os.ReadFile(u.exe); err != nil || !bytes.Equal(b, u.old) {
		u.t.Fatalf("the installed binary changed (%v)", err)
	}
	if _, err := os.Stat(u.exe + ".new"); !os.IsNotExist(err) {
		u.t.Fatalf("a download was left beside the binary: %v", err)
	}
	a, err := u.st.AgentByID(u.ctx, u.agentRow.ID)
	if err != nil || a.Version != olderVersion || a.Status != store.AgentOnline {
		u.t.Fatalf("agent row %+v, %v; want online on %s", a, err, olderVersion)
	}
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSelfUpdate runs agents stamped with an older version against servers serving a newer
// build, as real processes; the two builds are linked once for every case.
func TestSelfUpdate(t *testing.T) {
	t.Parallel()
	builds := buildAgents(t, t.TempDir())
	t.Run("idle agent updates to the served build, then deploys", func(t *testing.T) {
		t.Parallel()
		idleAgentUpdatesThenDeploys(t, builds)
	})
	t.Run("bad update or switched off leaves the old agent running", func(t *testing.T) {
		t.Parallel()
		badUpdatesLeaveTheOldAgent(t, builds)
	})
}

// idleAgentUpdatesThenDeploys: the agent downloads the served build, swaps it in,
// re-executes itself as the same process and reconnects with the new version; a push right
// after deploys through it.
func idleAgentUpdatesThenDeploys(t *testing.T, builds map[string][]byte) {
	served := builds[servedVersion]
	u := newUpdateStack(t, builds, served)
	pid := u.start()

	waitFor(t, 3*time.Minute, "the agent online on "+servedVersion, func() bool {
		a, err := u.st.AgentByID(u.ctx, u.agentRow.ID)
		return err == nil && a.Version == servedVersion && a.Status == store.AgentOnline
	})
	waitFor(t, time.Minute, "the new build confirmed", func() bool {
		return contains(u.agent.out.String(), "update confirmed: the new build connected")
	})
	select {
	case <-u.agent.Done():
		t.Fatalf("the agent process exited instead of re-executing itself:\n%s", tail(u.agent.out.String(), 50))
	default:
	}
	if u.agent.Pid() != pid {
		t.Fatalf("agent pid %d, want %d: re-exec keeps the process", u.agent.Pid(), pid)
	}
	if b, _ := os.ReadFile(u.exe); !bytes.Equal(b, served) {
		t.Fatal("the installed binary is not the served build")
	}
	if b, _ := os.ReadFile(u.exe + ".prev"); !bytes.Equal(b, u.old) {
		t.Fatal("the old build was not kept as .prev")
	}
	if !contains(u.server.out.String(), "agent update offered", olderVersion, servedVersion) {
		t.Fatalf("the server did not log the offer:\n%s", tail(u.server.out.String(), 50))
	}

	u.deployPage("updated\n", "deploy right after the update")
}

// badUpdatesLeaveTheOldAgent covers the updates that must not happen: a build tampered
// with after the server checksummed it, a build that exits at once, and an agent whose
// automatic update is switched off.
func badUpdatesLeaveTheOldAgent(t *testing.T, builds map[string][]byte) {
	cases := []struct {
		name       string
		binary     []byte
		prepare    func(u *updateStack)
		serverLogs []string
		agentLogs  []string
	}{
		{
			name:   "checksum mismatch",
			binary: builds[servedVersion],
			prepare: func(u *updateStack) {
				// Served bytes change after the server announced their checksum.
				f, err := os.OpenFile(filepath.Join(u.distDir, "stagely-agent-linux-"+runtime.GOARCH), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					u.t.Fatal(err)
				}
				_, _ = f.Write([]byte("tampered"))
				_ = f.Close()
			},
			serverLogs: []string{"agent update failed", "checksum mismatch"},
			agentLogs:  []string{"self-update failed", "checksum mismatch"},
		},
		{
			name:       "binary that exits at once",
			binary:     []byte("#!/bin/sh\nexit 1\n"),
			serverLogs: []string{"agent update failed", "does not run here"},
			agentLogs:  []string{"self-update failed", "does not run here"},
		},
		{
			name:   "automatic update switched off",
			binary: builds[servedVersion],
			prepare: func(u *updateStack) {
				if err := u.st.SetAgentAutoUpdate(u.ctx, u.agentRow.ID, false); err != nil {
					u.t.Fatal(err)
				}
			},
			serverLogs: []string{"agent update not offered: automatic update is off"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpdateStack(t, builds, tc.binary)
			if tc.prepare != nil {
				tc.prepare(u)
			}
			pid := u.start()
			waitFor(t, 2*time.Minute, "the server's log line", func() bool { return contains(u.server.out.String(), tc.serverLogs...) })
			if len(tc.agentLogs) > 0 {
				waitFor(t, time.Minute, "the agent's log line", func() bool { return contains(u.agent.out.String(), tc.agentLogs...) })
			}
			u.wantOldAgentRunning(pid)
		})
	}
}
