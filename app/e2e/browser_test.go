package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store"
)

// TestBrowser drives the dashboard in Debian's Chromium (playwright-core, web/e2e/browser.mjs)
// against the real server binary, with the SPA embedded, and githubsim: sign in, create an agent
// (its token shown once), run the install command it shows on this machine until the agent is
// online, create a project linked to it, add a secret, sign out. The script checks what the
// browser shows; this test then checks what the server stored.
func TestBrowser(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs("../../web/e2e/browser.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("../../web/node_modules/playwright-core/package.json"); err != nil {
		t.Fatalf("playwright-core is not installed: run `cd web && npm ci` (%v)", err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(chromium); err != nil {
		t.Fatalf("no Chromium at %s: install Debian's chromium package or set CHROMIUM (%v)", chromium, err)
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatal("sudo is not installed, and the dashboard's install command runs with it: apt-get install sudo (scripts/ensure-debian-tools.sh does)")
	}
	out := browserOutputDir(t)

	// The server serves the agent TestMain built, as the install command downloads it.
	bins := t.TempDir()
	copyFile(t, bin.Agent, filepath.Join(bins, "stagely-agent-linux-"+runtime.GOARCH))
	installRoot := t.TempDir()
	t.Cleanup(func() { stopInstalledAgent(t, installRoot) })
	s := newStack(t, stackOptions{bare: true, serverEnv: []string{"STAGELY_AGENT_DIR=" + bins}})
	githubID := s.sim.AddUser("alice")
	if err := s.sim.AddInstallationMember(s.installation, "alice"); err != nil {
		t.Fatal(err)
	}
	s.sim.SetAuthorizeAs("alice")
	secretValue := "postgres://app:" + randomHex(t, 12) + "@db:5432/app"

	// Each step of the script waits up to a minute; on a loaded machine the whole script can
	// take minutes, and cutting it short kills Playwright mid-step with a confusing error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	cmd.Env = append(os.Environ(),
		"STAGELY_URL="+s.serverURL,
		"STAGELY_SCREENSHOTS="+out,
		"STAGELY_SECRET_VALUE="+secretValue,
		"STAGELY_INSTALL_ROOT="+installRoot,
		"CHROMIUM="+chromium,
	)
	// Playwright closes its browser on SIGINT; a kill would leave Chromium behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	output, err := cmd.CombinedOutput()
	t.Logf("screenshots in %s", out)
	if err != nil {
		t.Fatalf("browser script (node %s): %v\n%s", script, err, output)
	}
	t.Logf("browser script:\n%s", output)

	user, err := s.st.UserByGitHubID(s.ctx, githubID)
	if err != nil {
		t.Fatalf("the signed-in GitHub user %d has no user row: %v", githubID, err)
	}
	if user.Login != "alice" {
		t.Fatalf("user login %q, want alice", user.Login)
	}

	t.Run("the agent created in the browser belongs to the user", func(t *testing.T) {
		agents, err := s.st.AgentsByUser(s.ctx, user.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) != 1 || agents[0].Name != "box" {
			t.Fatalf("agents of alice: %+v, want one named box", agents)
		}
		// The agent the script installed traded its bootstrap token and is connected.
		waitFor(t, time.Minute, "the installed agent online", func() bool {
			a, err := s.st.AgentByID(s.ctx, agents[0].ID)
			return err == nil && a.Status != store.AgentOffline
		})
	})

	projects, err := s.st.ProjectsByUser(s.ctx, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(projects) != 1 {
		t.Fatalf("alice has %d projects, want 1", len(projects))
	}
	p := projects[0]

	t.Run("the project is acme/web on main, linked to the agent", func(t *testing.T) {
		agents, err := s.st.AgentsByUser(s.ctx, user.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.RepoFullName != s.repo || p.RepoID != s.sim.RepoID(s.repo) || p.DeployBranch != "main" || p.Name != "web" {
			t.Fatalf("project %+v, want web = %s (id %d) on main", p, s.repo, s.sim.RepoID(s.repo))
		}
		if len(agents) != 1 || !p.AgentID.Valid || p.AgentID.Int64 != agents[0].ID {
			t.Fatalf("project agent %+v, want agent %+v", p.AgentID, agents)
		}
	})

	t.Run("the secret is stored sealed and opens to the typed value", func(t *testing.T) {
		rows, err := s.st.SealedSecrets(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Scope != "global" || rows[0].Key != "DATABASE_URL" {
			t.Fatalf("secrets %+v, want global/DATABASE_URL", rows)
		}
		if bytes.Contains(rows[0].ValueEncrypted, []byte(secretValue)) || rows[0].KeyID == "" {
			t.Fatal("the secret row holds the value in the clear, or names no key")
		}
		opened, err := secrets.New(s.st, s.keys).ForDeploy(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(opened) != 1 || opened[0].Value != secretValue {
			t.Fatal("the sealed secret does not open to the value typed in the browser")
		}
	})

	t.Run("signing out revoked the session", func(t *testing.T) {
		db, err := sql.Open("postgres", s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var total, live int
		err = db.QueryRowContext(s.ctx, `
			SELECT count(*), count(*) FILTER (WHERE revoked_at IS NULL) FROM sessions WHERE user_id = $1`,
			user.ID).Scan(&total, &live)
		if err != nil {
			t.Fatal(err)
		}
		if total != 1 || live != 0 {
			t.Fatalf("alice has %d sessions, %d not revoked; want 1 session, revoked", total, live)
		}
	})
}

// browserOutputDir is where screenshots (and, on failure, the page's HTML and a Playwright
// trace) go: $STAGELY_TEST_OUTPUT, else a new dated folder in the temporary directory (unique,
// so two runs started in the same second do not mix their screenshots). It is not a
// t.TempDir, so it outlives the test for a person or CI to look at.
func browserOutputDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("STAGELY_TEST_OUTPUT"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "stagely-browser-"+time.Now().Format("20060102-150405")+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
