package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/api"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

func TestMain(m *testing.M) {
	// gin's mode is process-wide; set it once, before any parallel test builds a router.
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// userHeader names the signed-in user in tests; the real server uses app/auth's session.
const userHeader = "X-Test-User"

const serverURL = "https://stagely.example.test"

// session is a signed-in test user: the database row and a GitHub user token the Sim issued.
type session struct {
	user  store.User
	token string
}

// recordingRevoker is the hub's part the API uses, recording every revoked agent.
type recordingRevoker struct {
	revoked recordtest.List[int64]
}

func (r *recordingRevoker) Revoke(agentID int64) { r.revoked.Add(agentID) }

// env is one API on its own database and its own simulated GitHub.
type env struct {
	t       *testing.T
	st      *store.Store
	sim     *githubsim.Sim
	router  *gin.Engine
	revoker *recordingRevoker
	updates *recordingUpdates
	logs    *logtest.Buffer
	secrets *secrets.Service

	mu       sync.Mutex
	sessions map[string]session
	bodies   recordtest.List[string] // every response body, for the secret scans
}

// newEnv mints agent tokens at bcrypt's lowest cost: the hash checks the same, and the
// race detector makes a hash at the real cost take a second or more.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvMinting(t, bcrypt.MinCost)
}

// newEnvMinting is newEnv with agent tokens minted at tokenCost (0: the API's default).
func newEnvMinting(t *testing.T, tokenCost int) *env {
	t.Helper()
	k := apptest.New(t, githubsim.Options{})
	e := &env{
		t: t, st: k.Store, sim: k.Sim, revoker: &recordingRevoker{}, updates: &recordingUpdates{latest: servedVersion}, logs: k.Logs,
		sessions: map[string]session{}, secrets: k.Secrets(),
	}
	a, err := api.New(api.Options{
		Store: k.Store, Secrets: e.secrets, Revoker: e.revoker, GitHub: k.GitHubClient(t, github.Options{}),
		CurrentUser: func(c *gin.Context) (store.User, bool) {
			s, ok := e.session(c.GetHeader(userHeader))
			return s.user, ok
		},
		GitHubToken: func(c *gin.Context) (string, bool) {
			s, ok := e.session(c.GetHeader(userHeader))
			return s.token, ok && s.token != ""
		},
		GitHubURL: k.Endpoints.Web, ServerURL: serverURL, Logger: k.Logs.Logger(),
		AgentTokenCost: tokenCost, AgentUpdates: e.updates,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.router = gin.New()
	a.Register(e.router)
	e.router.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			a.NotFound(c)
		}
	})
	t.Cleanup(func() {
		// Whatever a test did, no log line may carry a token.
		for _, s := range e.sessions {
			if s.token != "" && strings.Contains(e.logs.String(), s.token) {
				t.Errorf("a GitHub token appears in the log")
			}
		}
		if strings.Contains(e.logs.String(), "stg_") {
			t.Errorf("an agent token appears in the log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) session(name string) (session, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[name]
	return s, ok
}

// signIn makes login a GitHub user of the Sim and a Stagely user, with a user token obtained
// through the real OAuth code exchange.
func (e *env) signIn(login string) session {
	e.t.Helper()
	ghID := e.sim.AddUser(login)
	u, err := e.st.UpsertUser(context.Background(), store.User{GitHubID: ghID, Login: login, Name: strings.ToUpper(login), AvatarURL: "https://avatars.example/" + login})
	if err != nil {
		e.t.Fatal(err)
	}
	s := session{user: u, token: e.oauthToken(login)}
	e.mu.Lock()
	e.sessions[login] = s
	e.mu.Unlock()
	return s
}

func (e *env) oauthToken(login string) string {
	e.t.Helper()
	ep := e.sim.Endpoints()
	e.sim.SetAuthorizeAs(login)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	callback := "http://stagely.test/auth/github/callback"
	q := url.Values{"client_id": {e.sim.ClientID()}, "redirect_uri": {callback}, "state": {"st"}}
	resp, err := noFollow.Get(ep.Web + "/login/oauth/authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		e.t.Fatalf("authorize did not redirect with a code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	form := url.Values{"client_id": {e.sim.ClientID()}, "client_secret": {e.sim.ClientSecret()},
		"code": {loc.Query().Get("code")}, "redirect_uri": {callback}}
	req, _ := http.NewRequest(http.MethodPost, ep.Web+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		e.t.Fatalf("code exchange: %v %q", err, tok.Error)
	}
	return tok.AccessToken
}

// response is one answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request as user (empty: signed out). body is sent as-is when it is a string,
// JSON-encoded otherwise.
func (e *env) do(method, path, user string, body any) response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set(userHeader, user)
	}
	rec := httptest.NewRecorder()
	e.router.ServeHTTP(rec, req)
	e.bodies.Add(rec.Body.String())
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// must sends a request and fails the test unless the answer has status want; it decodes
// the body into out when out is not nil.
func (e *env) must(want int, method, path, user string, body, out any) response {
	e.t.Helper()
	res := e.do(method, path, user, body)
	if res.status != want {
		e.t.Fatalf("%s %s as %q = %d, want %d: %s", method, path, user, res.status, want, res.body)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, res.body, err)
		}
	}
	return res
}

// apiError is the one error shape.
type apiError struct {
	Message     string `json:"message"`
	Detail      string `json:"detail"`
	Validations []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"validations"`
}

func decodeError(t *testing.T, res response) apiError {
	t.Helper()
	var e apiError
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Message == "" || e.Validations == nil {
		t.Fatalf("error body %s is not {message, detail?, validations}: %v", res.body, err)
	}
	return e
}

func (a apiError) fields() []string {
	var out []string
	for _, v := range a.Validations {
		out = append(out, v.Field)
	}
	return out
}

// Wire shapes of docs/api.md as the SPA reads them.
type project struct {
	ID             int64  `json:"id"`
	PublicID       string `json:"public_id"`
	Name           string `json:"name"`
	RepoID         int64  `json:"repo_id"`
	RepoFullName   string `json:"repo_full_name"`
	DeployBranch   string `json:"deploy_branch"`
	RootDirectory  string `json:"root_directory"`
	ComposeProject string `json:"compose_project"`
	InstallationID int64  `json:"installation_id"`
	Agent          *struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"agent"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
	PreviewsEnabled bool   `json:"previews_enabled"`
	PreviewAgent    *struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"preview_agent"`
}

type agent struct {
	ID             int64   `json:"id"`
	Name           string  `json:"name"`
	Status         string  `json:"status"`
	LastHeartbeat  *string `json:"last_heartbeat"`
	Version        string  `json:"version"`
	Hostname       string  `json:"hostname"`
	DockerVersion  string  `json:"docker_version"`
	ComposeVersion string  `json:"compose_version"`
	CreatedAt      string  `json:"created_at"`

	WaitingForFirstConnection bool    `json:"waiting_for_first_connection"`
	BootstrapExpiresAt        *string `json:"bootstrap_expires_at"`
}

type agentEvent struct {
	ID        int64          `json:"id"`
	Action    string         `json:"action"`
	Actor     string         `json:"actor"`
	Detail    map[string]any `json:"detail"`
	CreatedAt string         `json:"created_at"`
}

type agentWithToken struct {
	Agent          agent  `json:"agent"`
	Token          string `json:"token"`
	CloudInit      string `json:"cloud_init"`
	InstallCommand string `json:"install_command"`
}

type secretMeta struct {
	Environment       string `json:"environment"`
	ShareWithPreviews bool   `json:"share_with_previews"`
	Scope             string `json:"scope"`
	Key               string `json:"key"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
}

// world is alice's GitHub: her own installation with two repositories, and an organization
// installation she is a member of.
type world struct {
	alice     session
	aliceInst int64
	orgInst   int64
	webRepo   int64 // alice/My.Web-App, default branch "trunk"
	apiRepo   int64 // alice/api, default branch "main"
	orgRepo   int64 // acme/site
}

// newAliceEnv is newEnv with alice signed in to her GitHub world.
func newAliceEnv(t *testing.T) (*env, world) {
	t.Helper()
	e := newEnv(t)
	return e, e.aliceWorld()
}

func (e *env) aliceWorld() world {
	e.t.Helper()
	w := world{alice: e.signIn("alice")}
	w.aliceInst = e.sim.AddInstallation("alice")
	w.orgInst = e.sim.AddInstallation("acme")
	if err := e.sim.AddInstallationMember(w.orgInst, "alice"); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range []struct {
		inst         int64
		name, branch string
	}{{w.aliceInst, "alice/My.Web-App", "trunk"}, {w.aliceInst, "alice/api", "main"}, {w.orgInst, "acme/site", "main"}} {
		if err := e.sim.CreateRepo(r.inst, r.name, r.branch); err != nil {
			e.t.Fatal(err)
		}
	}
	w.webRepo = e.sim.RepoID("alice/My.Web-App")
	w.apiRepo = e.sim.RepoID("alice/api")
	w.orgRepo = e.sim.RepoID("acme/site")
	return w
}

// bobWithRepo signs bob in and gives him an installation of his own with one repository,
// name (default branch main); it returns the installation's and the repository's ids.
func (e *env) bobWithRepo(name string) (inst, repo int64) {
	e.t.Helper()
	e.signIn("bob")
	inst = e.sim.AddInstallation("bob")
	if err := e.sim.CreateRepo(inst, name, "main"); err != nil {
		e.t.Fatal(err)
	}
	return inst, e.sim.RepoID(name)
}

// newAliceProject is newAliceEnv with alice's project on alice/api.
func newAliceProject(t *testing.T) (*env, project) {
	t.Helper()
	e, w := newAliceEnv(t)
	return e, e.apiProject(w)
}

// apiProject is alice's project on alice/api, created through the API.
func (e *env) apiProject(w world) project {
	e.t.Helper()
	var p project
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo}, &p)
	return p
}
