package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
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
// online, create a project linked to it, add a secret, paste a .env file into the preview set
// (first with bad lines), mark a production secret for previews, switch previews on with the
// agent, see the previews list, sign out. The script checks what the browser shows; this test
// then checks what the server stored.
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
	previewSecretValue := "postgres://preview:" + randomHex(t, 12) + "@db:5432/app"

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
		"STAGELY_PREVIEW_SECRET_VALUE="+previewSecretValue,
		"STAGELY_INSTALL_ROOT="+installRoot,
		"CHROMIUM="+chromium,
	)
	// Playwright closes its browser on SIGINT; a kill would leave Chromium behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the browser script: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	err = recordPreviewsOnceSwitchedOn(t, s, exited)
	t.Logf("screenshots in %s", out)
	if err != nil {
		t.Fatalf("browser script (node %s): %v\n%s", script, err, output.String())
	}
	t.Logf("browser script:\n%s", output.String())

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

	t.Run("the pasted .env is the preview set; production is unchanged and shared with previews", func(t *testing.T) {
		keys := secrets.New(s.st, s.keys)
		prod, err := keys.ForDeploy(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(prod) != 1 || prod[0].Key != "DATABASE_URL" || prod[0].Value != secretValue {
			t.Fatal("production secrets changed: want DATABASE_URL with the typed value only")
		}
		prev, err := keys.ForPreview(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, sec := range prev {
			got[sec.Scope+"/"+sec.Key] = sec.Value
		}
		want := map[string]string{
			"global/API_URL":       "https://api.preview.example.com",
			"global/DATABASE_URL":  previewSecretValue, // the preview value wins over the shared production one
			"global/FEATURE_FLAGS": "new-checkout",
		}
		if len(got) != len(want) || got["global/API_URL"] != want["global/API_URL"] ||
			got["global/DATABASE_URL"] != want["global/DATABASE_URL"] || got["global/FEATURE_FLAGS"] != want["global/FEATURE_FLAGS"] {
			t.Fatalf("previews get %d secrets (keys %v), want the three pasted values", len(got), keysOf(got))
		}
		metas, err := s.st.SecretMetas(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(metas) != 4 || metas[0].Environment != store.EnvProduction || !metas[0].ShareWithPreviews {
			t.Fatalf("secret rows %+v, want the production DATABASE_URL marked for previews and three preview rows", metas)
		}
	})

	t.Run("previews are on, on the agent picked in the browser", func(t *testing.T) {
		now, err := s.st.ProjectByID(s.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !now.PreviewsEnabled || !now.PreviewAgentID.Valid || !now.AgentID.Valid || now.PreviewAgentID.Int64 != now.AgentID.Int64 {
			t.Fatalf("project previews_enabled %v, preview agent %+v; want on, on agent %+v", now.PreviewsEnabled, now.PreviewAgentID, now.AgentID)
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

// recordPreviewsOnceSwitchedOn waits until the browser has switched previews on for the
// project and picked its agent, then records three pull request previews as the server's
// pipeline would (live, queued, awaiting approval from a fork), for the script's previews list
// step. It returns the script's exit once it has ended.
func recordPreviewsOnceSwitchedOn(t *testing.T, s *stack, exited <-chan error) error {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	recorded := false
	for {
		select {
		case err := <-exited:
			return err
		case <-tick.C:
		}
		if recorded {
			continue
		}
		var id int64
		err := s.st.DB().QueryRowContext(s.ctx, `
			SELECT id FROM projects WHERE previews_enabled AND preview_agent_id IS NOT NULL`).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			t.Errorf("look for the project with previews on: %v", err)
			continue
		}
		if _, err := s.st.DB().ExecContext(s.ctx, `
			INSERT INTO previews (project_id, pr_number, head_sha, head_ref, head_repo_full_name, author_login, state, urls, updated_at)
			VALUES ($1, 11, repeat('a', 40), 'new-checkout', $2, 'alice', 'live', '{"web": "https://web--pr-11--web.preview.example.com"}', now() - interval '3 minutes'),
			       ($1, 12, repeat('b', 40), 'faster-search', $2, 'alice', 'queued', '{}', now() - interval '2 minutes'),
			       ($1, 13, repeat('c', 40), 'typo', 'mallory/web', 'mallory', 'awaiting_approval', '{}', now() - interval '1 minute')`,
			id, s.repo); err != nil {
			t.Errorf("record the previews: %v", err)
		}
		recorded = true
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
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
