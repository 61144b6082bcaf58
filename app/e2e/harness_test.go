package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/caddy/caddytest"
	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/childproc"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// bin holds the binaries the tests run: the ones `make build` produced when the environment
// names them, otherwise built once per test binary (apptest.RunWithBinaries).
var bin apptest.Binaries

func TestMain(m *testing.M) {
	os.Exit(apptest.RunWithBinaries(m, &bin, buildBinaries))
}

// buildBinaries builds the server and the agent from this checkout into dir.
func buildBinaries(dir string) (apptest.Binaries, error) {
	b := apptest.Binaries{Server: filepath.Join(dir, "stagely-server"), Agent: filepath.Join(dir, "stagely-agent")}
	for _, src := range []struct{ dir, out, pkg string }{
		{"../..", b.Server, "./app/cmd/stagely-server"},
		{"../../agent", b.Agent, "./cmd/stagely-agent"},
	} {
		cmd := exec.Command("go", "build", "-o", src.out, src.pkg)
		cmd.Dir = src.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build %s: %w\n%s", src.pkg, err, out)
		}
	}
	return b, nil
}

// process is a stagely binary running for a test, its output kept for failure messages.
type process struct {
	*childproc.Process
	name string
	out  *logtest.Buffer
}

func startProcess(t testing.TB, name, path string, env []string, args ...string) *process {
	t.Helper()
	out := &logtest.Buffer{}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := childproc.Start(cmd)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &process{Process: proc, name: name, out: out}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(p.out.String(), 150))
		}
	})
	return p
}

// stop interrupts the process and waits, then kills it.
func (p *process) stop(t testing.TB) {
	if p.Stop(20 * time.Second) {
		t.Logf("%s did not stop within 20s and was killed", p.name)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// contains says whether s holds every one of parts.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// freePort is a loopback TCP port nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	return caddytest.FreePort(t)
}

// stack is one Stagely installation under test: githubsim, PostgreSQL, the server binary
// and the agent binary on the real Docker engine, with one user, project and agent.
type stack struct {
	t         testing.TB
	ctx       context.Context
	sim       *githubsim.Sim
	st        *store.Store
	keys      *seal.Keyring
	serverEnv []string
	server    *process
	serverURL string
	agent     *process
	agentEnv  []string
	repo      string
	project   store.Project
	agentRow  store.Agent
	token     string

	installation int64 // githubsim's id of the installation on "acme"
	dsn          string
}

type stackOptions struct {
	serverEnv []string
	noAgent   bool
	// bare leaves the database without user, installation, agent and project rows and starts
	// no agent: the browser test creates them through the dashboard.
	bare bool
	// dsn is the database to use instead of a fresh one on the shared test cluster.
	dsn string
	// githubAPI, when set, maps githubsim's API URL to the one the server is given (a proxy).
	githubAPI func(api string) string
	// agentServerURL, when set, maps the server's URL to the one the agent dials (a proxy).
	agentServerURL func(serverURL string) string
}

func newStack(t testing.TB, opt stackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	k := apptest.New(t, githubsim.Options{})
	s := &stack{t: t, ctx: ctx, repo: "acme/web", sim: k.Sim, st: k.Store, keys: k.Keys, dsn: k.DatabaseURL}
	inst := s.sim.AddInstallation("acme")
	s.installation = inst
	if err := s.sim.CreateRepo(inst, s.repo, "main"); err != nil {
		t.Fatal(err)
	}
	// alice, who owns the project, is a member of acme: GitHub gives her write access to acme/web.
	aliceGitHubID := s.sim.AddUser("alice")
	if err := s.sim.AddInstallationMember(inst, "alice"); err != nil {
		t.Fatal(err)
	}

	if opt.dsn != "" {
		s.st, s.dsn = storetest.Open(t, opt.dsn), opt.dsn
	}

	port := freePort(t)
	s.serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	env := s.sim.ServerEnv()
	if opt.githubAPI != nil {
		// A later value of a variable wins (os/exec keeps the last of duplicates).
		env = append(env, "STAGELY_GITHUB_API_URL="+opt.githubAPI(k.Endpoints.API))
	}
	s.serverEnv = append(append([]string{
		"STAGELY_DATABASE_URL=" + s.dsn,
		"STAGELY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(k.Key),
		fmt.Sprintf("STAGELY_LISTEN=127.0.0.1:%d", port),
		"STAGELY_PUBLIC_URL=" + s.serverURL,
		"STAGELY_SWEEP_INTERVAL=500ms",
	}, env...), opt.serverEnv...)
	s.startServer()
	s.sim.SetWebhookURL(s.serverURL + "/webhooks/github")
	if opt.bare {
		return s
	}

	// The dashboard (issue [4]) will create these rows; here the test does, the same way.
	user, err := s.st.UpsertUser(ctx, store.User{GitHubID: aliceGitHubID, Login: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.st.UpsertInstallation(ctx, store.Installation{GitHubID: inst, AccountLogin: "acme", AccountID: 77, AccountType: "Organization"})
	if err != nil {
		t.Fatal(err)
	}
	s.agentRow, s.token = apptest.NewAgent(t, s.st, user.ID, "box")
	s.project, err = s.st.CreateProject(ctx, store.NewProject{
		UserID: user.ID, InstallationID: in.ID, Name: "web", RepoID: s.sim.RepoID(s.repo),
		RepoFullName: s.repo, DeployBranch: "main", AgentID: &s.agentRow.ID,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { composeDown(t, s.project.ComposeProject) })

	agentURL := s.serverURL
	if opt.agentServerURL != nil {
		agentURL = opt.agentServerURL(s.serverURL)
	}
	s.agentEnv = []string{
		"STAGELY_SERVER_URL=" + agentURL,
		"STAGELY_TOKEN=" + s.token,
		"STAGELY_DATA_DIR=" + t.TempDir(),
		"STAGELY_CONFIG=/nonexistent/config.json",
		// Agents of tests running side by side each answer Caddy's check on a port of their own.
		"STAGELY_PREVIEW_ASK_LISTEN=127.0.0.1:0",
	}
	if !opt.noAgent {
		s.startAgent()
	}
	return s
}

func (s *stack) startServer() {
	s.t.Helper()
	s.server = startProcess(s.t, "stagely-server", bin.Server, s.serverEnv)
	waitFor(s.t, 30*time.Second, "server /readyz", func() bool {
		resp, err := http.Get(s.serverURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (s *stack) startAgent() {
	s.t.Helper()
	s.agent = startProcess(s.t, "stagely-agent", bin.Agent, s.agentEnv)
	waitFor(s.t, 30*time.Second, "agent online", func() bool {
		a, err := s.st.AgentByID(s.ctx, s.agentRow.ID)
		return err == nil && a.Status != store.AgentOffline
	})
}

func (s *stack) putSecret(scope, key, value string) {
	s.t.Helper()
	if _, err := secrets.New(s.st, s.keys).Put(s.ctx, s.project.ID, scope, key, []byte(value)); err != nil {
		s.t.Fatal(err)
	}
}

// push commits files to branch through githubsim, which delivers the signed push webhook.
func (s *stack) push(branch string, files map[string][]byte, msg string) string {
	s.t.Helper()
	sha, err := s.sim.Commit(s.ctx, s.repo, branch, files, msg)
	if err != nil {
		s.t.Fatalf("push: %v", err)
	}
	return sha
}

// deployCheck waits for the completed "Stagely / deploy" check run numbered n (1-based,
// in creation order) on sha.
func (s *stack) deployCheck(sha string, n int, within time.Duration) githubsim.CheckRun {
	s.t.Helper()
	return s.namedCheck("Stagely / deploy", sha, n, within)
}

// wantDeployed waits up to within for sha's deploy check run and fails, saying what was
// deployed, unless it concluded success.
func (s *stack) wantDeployed(sha string, within time.Duration, what string) githubsim.CheckRun {
	s.t.Helper()
	run := s.deployCheck(sha, 1, within)
	if run.Conclusion != "success" {
		s.t.Fatalf("%s: check run %q: %s\n%s\n%s", what, run.Conclusion, run.Title, run.Summary, tail(run.Text, 30))
	}
	return run
}

// deployPage pushes a sample repository whose service serves page, as commit msg, and checks
// that its deployment succeeds and the service answers page.
func (s *stack) deployPage(page, msg string) {
	s.t.Helper()
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(s.t), Port: freePort(s.t), Page: page}
	sha := s.push("main", repo.Files(), msg)
	s.wantDeployed(sha, 3*time.Minute, msg)
	if got := httpGet(s.t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != page {
		s.t.Fatalf("the deployed service answered %q, want %q", got, page)
	}
}

// bootstrapStatus is the status the server answers an exchange of token alone, without the
// agent's exchange key: 410 once the token has been traded.
func (s *stack) bootstrapStatus(token string) int {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.serverURL+"/agent/bootstrap", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) deployments() []store.Deployment {
	s.t.Helper()
	ds, err := s.st.DeploymentsByProject(s.ctx, s.project.ID, 100)
	if err != nil {
		s.t.Fatal(err)
	}
	return ds
}

func (s *stack) delivery(id string) store.Delivery {
	s.t.Helper()
	var d store.Delivery
	waitFor(s.t, 20*time.Second, "delivery "+id+" processed", func() bool {
		var err error
		d, err = s.st.DeliveryByDeliveryID(s.ctx, id)
		return err == nil && (d.Status == store.DeliveryDone || d.Status == store.DeliveryFailed)
	})
	return d
}

func waitFor(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func composeDown(t testing.TB, project string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "-t", "0").CombinedOutput()
	if err != nil {
		t.Logf("compose down %s: %v: %s", project, err, out)
	}
}

// httpGet fetches a URL, retrying briefly while the service starts.
func httpGet(t testing.TB, url string) string {
	t.Helper()
	var body string
	waitFor(t, 20*time.Second, "GET "+url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	return body
}
