package auth_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// recorder keeps every response a browser client saw, headers and body, so tests can look
// for things that must never leave the server.
type recorder struct {
	next http.RoundTripper
	seen recordtest.List[recorded]
}

type recorded struct {
	url    string
	status int
	header http.Header
	body   []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.seen.Add(recorded{url: req.URL.String(), status: resp.StatusCode, header: resp.Header.Clone(), body: body})
	return resp, nil
}

// fixture is a Stagely HTTP server with auth mounted, a started githubsim and a real database.
type fixture struct {
	t         *testing.T
	sim       *githubsim.Sim
	st        *store.Store
	keys      *seal.Keyring
	auth      *auth.Auth
	srv       *httptest.Server
	clock     *clocktest.Clock
	logs      *logtest.Buffer
	publicURL string
	rec       *recorder
}

type fixtureOptions struct {
	https bool
	// noApp starts the server with no GitHub App at all.
	noApp bool
}

func newFixture(t *testing.T, opts fixtureOptions) *fixture {
	t.Helper()
	site := apptest.NewSite(opts.https)
	clk := clocktest.New()
	k := apptest.New(t, githubsim.Options{Now: clk.Now, CallbackURLs: []string{site.URL + "/auth/github/callback"}})
	env := k.Credentials()
	if opts.noApp {
		env = appcreds.Credentials{}
	}
	a, err := auth.New(auth.Options{
		Store: k.Store, Keys: k.Keys, Creds: appcreds.New(k.Store, k.Keys, env),
		GitHub:    k.GitHubClient(t, github.Options{HTTPClient: &http.Client{Timeout: 10 * time.Second}}),
		PublicURL: site.URL, Now: clk.Now, Logger: k.Logs.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Register(site.Router)
	mountProbes(site.Router, a, k.Endpoints.API)
	site.Start(t)
	return &fixture{t: t, sim: k.Sim, st: k.Store, keys: k.Keys, auth: a, srv: site.Server, clock: clk, logs: k.Logs,
		publicURL: site.URL, rec: &recorder{next: site.Server.Client().Transport}}
}

// mountProbes mounts what the tests ask behind auth's middleware: who is signed in, whether
// the session's GitHub token works (GitHub at apiURL says whose it is), any method on
// /api/things, and the dashboard at every other path.
func mountProbes(router *gin.Engine, a *auth.Auth, apiURL string) {
	api := router.Group("/api", a.SameOrigin(), a.RequireUser())
	api.GET("/me", func(c *gin.Context) {
		u, _ := auth.CurrentUser(c)
		c.JSON(http.StatusOK, gin.H{"id": u.ID, "login": u.Login})
	})
	api.GET("/github-user", func(c *gin.Context) {
		tok, ok := auth.GitHubToken(c)
		if !ok {
			c.JSON(http.StatusUnauthorized, gin.H{"message": "sign in again"})
			return
		}
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, apiURL+"user", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			c.JSON(http.StatusBadGateway, gin.H{"message": err.Error()})
			return
		}
		defer resp.Body.Close()
		var u struct {
			Login string `json:"login"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&u)
		c.JSON(resp.StatusCode, gin.H{"login": u.Login})
	})
	api.Any("/things", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	router.NoRoute(func(c *gin.Context) { c.String(http.StatusOK, "dashboard at %s", c.Request.URL.Path) })
}

// browser is a client with a cookie jar that follows redirects, like a person's browser.
func (f *fixture) browser() *http.Client {
	f.t.Helper()
	return apptest.Browser(f.t, f.rec)
}

// authorizing adds the GitHub user login, who then approves every authorization GitHub asks for.
func (f *fixture) authorizing(login string) {
	f.sim.AddUser(login)
	f.sim.SetAuthorizeAs(login)
}

// signIn runs the whole sign-in as a new GitHub user and returns the signed-in browser.
func (f *fixture) signIn(login string) *http.Client {
	f.t.Helper()
	f.authorizing(login)
	c := f.browser()
	resp := f.get(c, "/auth/github/login")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		f.t.Fatalf("sign-in ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, apptest.ReadBody(f.t, resp))
	}
	return c
}

// octocatAtCallback has octocat authorize the App in a new browser; it returns the browser
// and the callback URL GitHub sent it back to, not followed yet.
func (f *fixture) octocatAtCallback() (*http.Client, *url.URL) {
	f.t.Helper()
	f.authorizing("octocat")
	c := f.browser()
	return c, f.startLogin(c)
}

// startLogin begins a sign-in and stops at GitHub's redirect back, returning the callback URL
// (with GitHub's code and the state) without visiting it.
func (f *fixture) startLogin(c *http.Client) *url.URL {
	f.t.Helper()
	resp := f.get(apptest.StopAt(c, "/auth/github/callback"), "/auth/github/login")
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("GitHub answered %d, want a redirect back: %s", resp.StatusCode, apptest.ReadBody(f.t, resp))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		f.t.Fatal(err)
	}
	return loc
}

func (f *fixture) get(c *http.Client, pathOrURL string) *http.Response {
	f.t.Helper()
	return f.do(c, http.MethodGet, pathOrURL, nil)
}

func (f *fixture) do(c *http.Client, method, pathOrURL string, header http.Header) *http.Response {
	f.t.Helper()
	u := pathOrURL
	if strings.HasPrefix(u, "/") {
		u = f.srv.URL + u
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, pathOrURL, err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sessionCookie is the stagely_session cookie the browser holds ("" if none).
func (f *fixture) sessionCookie(c *http.Client) string {
	u, _ := url.Parse(f.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == auth.SessionCookie {
			return ck.Value
		}
	}
	return ""
}

func (f *fixture) countSessions() int {
	f.t.Helper()
	var n int
	if err := f.st.DB().QueryRow(`SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}
