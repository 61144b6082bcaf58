package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// binaries are built once per test binary by TestMain.
var bin struct{ server, agent string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stagely-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.server = filepath.Join(dir, "stagely-server")
	bin.agent = filepath.Join(dir, "stagely-agent")
	for _, b := range []struct{ dir, out, pkg string }{
		{"../..", bin.server, "./app/cmd/stagely-server"},
		{"../../agent", bin.agent, "./cmd/stagely-agent"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a stagely binary running for a test, its output kept for failure messages.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *logtest.Buffer
	done chan struct{}
}

func startProcess(t *testing.T, name, path string, env []string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(path), out: &logtest.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(p.out.String(), 150))
		}
	})
	return p
}

// stop sends SIGTERM and waits, then kills.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Logf("%s did not stop within 20s; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
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

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// stack is one Stagely installation under test: githubsim, PostgreSQL, the server binary
// and the agent binary on the real Docker engine, with one user, project and agent.
type stack struct {
	t         *testing.T
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
}

func newStack(t *testing.T, opt stackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	s := &stack{t: t, ctx: ctx, repo: "acme/web"}

	s.sim = githubsim.New(githubsim.Options{})
	ep := s.sim.Start()
	t.Cleanup(s.sim.Close)
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

	dsn := storetest.NewDatabase(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.st, s.dsn = st, dsn

	rawKey := make([]byte, 32)
	if _, err := rand.Read(rawKey); err != nil {
		t.Fatal(err)
	}
	if s.keys, err = seal.NewKeyring(rawKey); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	s.serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.serverEnv = append([]string{
		"STAGELY_DATABASE_URL=" + dsn,
		"STAGELY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(rawKey),
		fmt.Sprintf("STAGELY_LISTEN=127.0.0.1:%d", port),
		"STAGELY_PUBLIC_URL=" + s.serverURL,
		"STAGELY_GITHUB_API_URL=" + ep.API,
		"STAGELY_GITHUB_URL=" + ep.Web,
		fmt.Sprintf("STAGELY_GITHUB_APP_ID=%d", s.sim.AppID()),
		"STAGELY_GITHUB_APP_PRIVATE_KEY=" + string(s.sim.PrivateKeyPEM()),
		"STAGELY_GITHUB_WEBHOOK_SECRET=" + s.sim.WebhookSecret(),
		"STAGELY_GITHUB_CLIENT_ID=" + s.sim.ClientID(),
		"STAGELY_GITHUB_CLIENT_SECRET=" + s.sim.ClientSecret(),
		"STAGELY_SWEEP_INTERVAL=500ms",
	}, opt.serverEnv...)
	s.startServer()
	s.sim.SetWebhookURL(s.serverURL + "/webhooks/github")
	if opt.bare {
		return s
	}

	// The dashboard (issue [4]) will create these rows; here the test does, the same way.
	user, err := st.UpsertUser(ctx, store.User{GitHubID: aliceGitHubID, Login: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := st.UpsertInstallation(ctx, store.Installation{GitHubID: inst, AccountLogin: "acme", AccountID: 77, AccountType: "Organization"})
	if err != nil {
		t.Fatal(err)
	}
	s.agentRow, err = st.CreateAgent(ctx, user.ID, "box", func(id int64) (string, error) {
		m, err := agenttoken.Mint(id)
		s.token = m.Token
		return m.Hash, err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.project, err = st.CreateProject(ctx, store.NewProject{
		UserID: user.ID, InstallationID: in.ID, Name: "web", RepoID: s.sim.RepoID(s.repo),
		RepoFullName: s.repo, DeployBranch: "main", AgentID: &s.agentRow.ID,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { composeDown(t, s.project.ComposeProject) })

	s.agentEnv = []string{
		"STAGELY_SERVER_URL=" + s.serverURL,
		"STAGELY_TOKEN=" + s.token,
		"STAGELY_DATA_DIR=" + t.TempDir(),
		"STAGELY_CONFIG=/nonexistent/config.json",
	}
	if !opt.noAgent {
		s.startAgent()
	}
	return s
}

func (s *stack) startServer() {
	s.t.Helper()
	s.server = startProcess(s.t, "stagely-server", bin.server, s.serverEnv)
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
	s.agent = startProcess(s.t, "stagely-agent", bin.agent, s.agentEnv)
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
	var found githubsim.CheckRun
	waitFor(s.t, within, fmt.Sprintf("deploy check run #%d on %s completed", n, sha[:7]), func() bool {
		var runs []githubsim.CheckRun
		for _, r := range s.sim.CheckRuns(s.repo, sha) {
			if r.Name == "Stagely / deploy" {
				runs = append(runs, r)
			}
		}
		if len(runs) < n || runs[n-1].Status != "completed" {
			return false
		}
		found = runs[n-1]
		return true
	})
	return found
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

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
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

func composeDown(t *testing.T, project string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "-t", "0").CombinedOutput()
	if err != nil {
		t.Logf("compose down %s: %v: %s", project, err, out)
	}
}

// httpGet fetches a URL, retrying briefly while the service starts.
func httpGet(t *testing.T, url string) string {
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
