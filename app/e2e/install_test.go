package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

// TestInstallCommand runs the one line the dashboard shows for a new agent, as the API hands
// it out, on this machine: install.sh downloads the agent from the server, verifies it,
// writes config.json and starts it. It runs twice (the second run upgrades in place), and a
// push then deploys through the installed agent. This machine has no systemd, so the
// installer gets --start, and --root keeps the install out of the real /etc.
func TestInstallCommand(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatal("sudo is not installed, and the dashboard's command runs the installer with it: apt-get install sudo (scripts/ensure-debian-tools.sh does)")
	}
	// The server serves the agent TestMain built, as the binary for this machine's platform.
	bins := t.TempDir()
	copyFile(t, bin.Agent, filepath.Join(bins, "stagely-agent-linux-"+runtime.GOARCH))
	s := newStack(t, stackOptions{bare: true, serverEnv: []string{"STAGELY_AGENT_DIR=" + bins}})

	client, githubID := s.signIn("alice")
	var created struct {
		Agent          struct{ ID int64 } `json:"agent"`
		Token          string             `json:"token"`
		InstallCommand string             `json:"install_command"`
	}
	s.apiDo(client, http.MethodPost, "/api/agents", map[string]string{"name": "box"}, &created)
	// The token travels in the environment, on no command line.
	if want := "export STAGELY_TOKEN=" + created.Token + "; curl -fsSL " + s.serverURL + "/install.sh | sudo --preserve-env=STAGELY_TOKEN sh"; created.InstallCommand != want {
		t.Fatalf("install_command = %q, want %q", created.InstallCommand, want)
	}
	s.linkProject(githubID, created.Agent.ID)

	root := t.TempDir()
	t.Cleanup(func() { stopInstalledAgent(t, root) })
	install := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// sh reads the script from the pipe (-s) and takes the flags after --.
		out, err := exec.CommandContext(ctx, "sh", "-c", created.InstallCommand+" -s -- --root "+root+" --start").CombinedOutput()
		if err != nil {
			t.Fatalf("the install command failed: %v\n%s", err, out)
		}
		return string(out)
	}

	out := install()
	t.Logf("install.sh:\n%s", out)
	if !contains(out, "checksum verified", "systemd is not running: started the agent in the background") {
		t.Fatalf("install.sh output lacks the verification or the start:\n%s", out)
	}
	firstPID := installedPID(t, root)
	s.waitAgentOnline(created.Agent.ID, "after the first install")

	t.Run("config.json is root's, 0600, and holds the server URL and the traded token", func(t *testing.T) {
		path := filepath.Join(root, "etc/stagely/config.json")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o600 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("config.json mode %v owner %d:%d, want 0600 root:root", fi.Mode().Perm(), st.Uid, st.Gid)
		}
		var cfg map[string]string
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The agent traded the bootstrap token the command carried for its own token.
		if err := json.Unmarshal(raw, &cfg); err != nil || cfg["server_url"] != s.serverURL ||
			!strings.HasPrefix(cfg["token"], "stg_") || cfg["bootstrap_sha256"] == "" || strings.Contains(string(raw), created.Token) {
			t.Errorf("config.json holds no traded token (%v): server_url %q, token prefix %.5q", err, cfg["server_url"], cfg["token"])
		}
		unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/stagely-agent.service"))
		if err != nil || !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/stagely-agent --config /etc/stagely/config.json")) {
			t.Errorf("the systemd unit is missing or not deploy/'s (%v):\n%s", err, unit)
		}
	})

	t.Run("the bootstrap token works once", func(t *testing.T) {
		if code := s.bootstrapStatus(created.Token); code != http.StatusGone {
			t.Fatalf("replayed bootstrap token answered %d, want 410", code)
		}
		var agents []struct {
			ID      int64 `json:"id"`
			Waiting bool  `json:"waiting_for_first_connection"`
		}
		s.apiDo(client, http.MethodGet, "/api/agents", nil, &agents)
		if len(agents) != 1 || agents[0].Waiting {
			t.Fatalf("agents = %+v, want the one agent no longer waiting", agents)
		}
	})

	// Running the same command again replaces the binary and restarts the agent, which keeps
	// the token it traded (the bootstrap token works once).
	out = install()
	if !strings.Contains(out, fmt.Sprintf("stopping the running agent (pid %d) to upgrade it", firstPID)) ||
		!strings.Contains(out, "traded this bootstrap token for its own token already") {
		t.Fatalf("the second run did not upgrade the running agent in place, keeping its token:\n%s", out)
	}
	if pid := installedPID(t, root); pid == firstPID {
		t.Fatalf("the second run left pid %d running", pid)
	}
	s.waitAgentOnline(created.Agent.ID, "after the upgrade")

	s.deployPage("installed\n", "deploy through the installed agent")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o755); err != nil {
		t.Fatal(err)
	}
}

// signIn walks githubsim's OAuth round trip as login, who is a member of the installation,
// and returns a client holding the session cookie and the user's GitHub id.
func (s *stack) signIn(login string) (*http.Client, int64) {
	s.t.Helper()
	githubID := s.sim.AddUser(login)
	if err := s.sim.AddInstallationMember(s.installation, login); err != nil {
		s.t.Fatal(err)
	}
	s.sim.SetAuthorizeAs(login)
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := client.Get(s.serverURL + "/auth/github/login")
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	s.apiDo(client, http.MethodGet, "/api/me", nil, nil)
	return client, githubID
}

// apiDo calls the API as the SPA does (same Origin, JSON) and wants a 2xx answer.
func (s *stack) apiDo(client *http.Client, method, path string, body, out any) {
	s.t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.serverURL+path, in)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Origin", s.serverURL)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("decode %s %s: %v", method, path, err)
		}
	}
}

// linkProject links acme/web on main to the agent, as the dashboard's project form does.
func (s *stack) linkProject(githubID, agentID int64) {
	s.t.Helper()
	user, err := s.st.UserByGitHubID(s.ctx, githubID)
	if err != nil {
		s.t.Fatal(err)
	}
	in, err := s.st.UpsertInstallation(s.ctx, store.Installation{GitHubID: s.installation, AccountLogin: "acme", AccountID: 77, AccountType: "Organization"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.project, err = s.st.CreateProject(s.ctx, store.NewProject{
		UserID: user.ID, InstallationID: in.ID, Name: "web", RepoID: s.sim.RepoID(s.repo),
		RepoFullName: s.repo, DeployBranch: "main", AgentID: &agentID,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { composeDown(s.t, s.project.ComposeProject) })
}

func (s *stack) waitAgentOnline(id int64, when string) {
	s.t.Helper()
	waitFor(s.t, time.Minute, "the installed agent online "+when, func() bool {
		a, err := s.st.AgentByID(s.ctx, id)
		return err == nil && a.Status != store.AgentOffline
	})
}

// installedPID is the agent install.sh --start left running under root.
func installedPID(t *testing.T, root string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "run/stagely-agent.pid"))
	if err != nil {
		t.Fatalf("install.sh --start wrote no pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file holds %q", raw)
	}
	return pid
}

// stopInstalledAgent stops the background agent (it is not this test's child) and shows its log.
func stopInstalledAgent(t *testing.T, root string) {
	raw, err := os.ReadFile(filepath.Join(root, "run/stagely-agent.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(3 * time.Minute)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		t.Logf("the installed agent (pid %d) outlived SIGTERM by 3 minutes; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if t.Failed() {
		log, _ := os.ReadFile(filepath.Join(root, "var/log/stagely-agent.log"))
		t.Logf("---- installed agent log ----\n%s", tail(string(log), 100))
	}
}

// alive says whether pid runs; an exited process its new parent has not reaped yet is a
// zombie, which kill(pid, 0) still finds.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
