package setup_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/setup"
	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

const conversions = "/app-manifests/*/conversions"

// fixture is a Stagely server with /setup and sign-in mounted on one appcreds.Provider, as the
// real server wires them, against a started githubsim and a real database.
type fixture struct {
	t         *testing.T
	sim       *githubsim.Sim
	ep        githubsim.Endpoints
	st        *store.Store
	creds     *appcreds.Provider
	github    *github.Client
	srv       *httptest.Server
	clock     *clocktest.Clock
	publicURL string
	logs      *logtest.Buffer
	// token is the setup token the server was given, as the operator reads it in the log.
	token string
}

func newFixture(t *testing.T, env appcreds.Credentials) *fixture {
	t.Helper()
	site := apptest.NewSite(false)
	clk := clocktest.New()
	k := apptest.New(t, githubsim.Options{Now: clk.Now})
	creds := appcreds.New(k.Store, k.Keys, env)
	gh := k.GitHubClient(t, github.Options{AppKey: creds.AppKey})
	token := setup.TokenFromKey(k.Key)
	s, err := setup.New(setup.Options{Creds: creds, GitHub: gh, GitHubURL: k.Endpoints.Web, PublicURL: site.URL, Token: token, Logger: k.Logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Register(site.Router)
	a, err := auth.New(auth.Options{Store: k.Store, Keys: k.Keys, Creds: creds, GitHub: gh, PublicURL: site.URL, Now: clk.Now, Logger: k.Logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	a.Register(site.Router)
	site.Router.NoRoute(func(c *gin.Context) { c.String(http.StatusOK, "dashboard at %s", c.Request.URL.Path) })
	site.Start(t)
	return &fixture{t: t, sim: k.Sim, ep: k.Endpoints, st: k.Store, creds: creds, github: gh, srv: site.Server, clock: clk, publicURL: site.URL, logs: k.Logs, token: token}
}

func (f *fixture) browser() *http.Client {
	f.t.Helper()
	return apptest.Browser(f.t, nil)
}

// stopAtCallback is c, but it does not follow GitHub's redirect to /setup/callback.
func stopAtCallback(c *http.Client) *http.Client { return apptest.StopAt(c, "/setup/callback") }

func (f *fixture) get(c *http.Client, pathOrURL string) (*http.Response, string) {
	f.t.Helper()
	if strings.HasPrefix(pathOrURL, "/") {
		pathOrURL = f.srv.URL + pathOrURL
	}
	resp, err := c.Get(pathOrURL)
	if err != nil {
		f.t.Fatalf("GET %s: %v", pathOrURL, err)
	}
	return resp, apptest.ReadBody(f.t, resp)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	formField  = regexp.MustCompile(`<input type="hidden" name="manifest" value="([^"]*)">`)
)

// form loads /setup as the operator does, with the link from the server's log, and returns the
// registration form's target and manifest field.
func (f *fixture) form(c *http.Client, query string) (action, manifest string) {
	f.t.Helper()
	sep := "?"
	if query != "" {
		sep = "&"
	}
	resp, body := f.get(c, "/setup"+query+sep+"token="+url.QueryEscape(f.token))
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("/setup: %d %s", resp.StatusCode, body)
	}
	a, m := formAction.FindStringSubmatch(body), formField.FindStringSubmatch(body)
	if a == nil || m == nil {
		f.t.Fatalf("/setup has no manifest form:\n%s", body)
	}
	return html.UnescapeString(a[1]), html.UnescapeString(m[1])
}

// register posts the form to GitHub as the browser would; GitHub redirects back with a code.
func (f *fixture) register(c *http.Client) *http.Response {
	f.t.Helper()
	action, manifest := f.form(c, "")
	resp, err := c.PostForm(action, url.Values{"manifest": {manifest}})
	if err != nil {
		f.t.Fatalf("post manifest to GitHub: %v", err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// callbackURL runs the registration up to GitHub's redirect back and returns that URL unvisited.
func (f *fixture) callbackURL(c *http.Client) string {
	f.t.Helper()
	resp := f.register(stopAtCallback(c))
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("GitHub answered %d, want a redirect to the callback: %s", resp.StatusCode, apptest.ReadBody(f.t, resp))
	}
	return resp.Header.Get("Location")
}

// configure runs the whole registration in c's browser and fails unless the server reports the
// App configured; what names the run in the failure. It returns the callback URL, now spent.
func (f *fixture) configure(c *http.Client, what string) string {
	f.t.Helper()
	back := f.callbackURL(c)
	if resp, body := f.get(c, back); resp.StatusCode != http.StatusOK || !strings.Contains(body, "GitHub App configured") {
		f.t.Fatalf("%s: %d\n%s", what, resp.StatusCode, body)
	}
	return back
}

func TestSetup_EndToEndStoresSealedAppThatSignInUsesAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	ctx := context.Background()
	// Until /setup stores an App, the server's GitHub client acts as none and calls nobody.
	inst := f.sim.AddInstallation("acme")
	if err := f.sim.CreateRepo(inst, "acme/web", "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.github.Installation(inst).RepoReadToken(ctx, f.sim.RepoID("acme/web")); !errors.Is(err, appcreds.ErrNoApp) {
		t.Fatalf("installation call before setup: err = %v, want ErrNoApp", err)
	}
	c := f.browser()

	action, manifest := f.form(c, "")
	if !strings.HasPrefix(action, f.ep.Web+"/settings/apps/new?state=") {
		t.Fatalf("form posts to %q, want GitHub's new-app page with a state", action)
	}
	want, err := appmanifest.Render(f.publicURL)
	if err != nil {
		t.Fatal(err)
	}
	var got appmanifest.Manifest
	if err := json.Unmarshal([]byte(manifest), &got); err != nil {
		t.Fatalf("manifest field is not JSON: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("manifest field = %+v\nwant app-manifest.yml rendered for %s: %+v", got, f.publicURL, want)
	}

	resp := f.register(c)
	body := apptest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/setup" {
		t.Fatalf("registration ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, body)
	}
	install := f.ep.Web + "/apps/" + f.sim.AppSlug() + "/installations/new"
	if !strings.Contains(body, "GitHub App configured") || !strings.Contains(body, `href="`+install+`"`) {
		t.Fatalf("configured page lacks the install link %s:\n%s", install, body)
	}
	if strings.Contains(body, `name="manifest"`) {
		t.Fatal("the configured page still offers to register an App")
	}

	app, ok, err := f.creds.App(ctx)
	if err != nil || !ok {
		t.Fatalf("App after setup: ok=%v err=%v", ok, err)
	}
	cr := app.Credentials
	if cr.AppID != f.sim.AppID() || !bytes.Equal(cr.PrivateKeyPEM, f.sim.PrivateKeyPEM()) || cr.WebhookSecret != f.sim.WebhookSecret() ||
		cr.ClientID != f.sim.ClientID() || cr.ClientSecret != f.sim.ClientSecret() || app.Slug != f.sim.AppSlug() {
		t.Fatalf("stored App %v (slug %q) is not the one GitHub created", cr, app.Slug)
	}
	// The same client, built before the App existed, now acts as it: the token is minted with its JWT.
	if tok, err := f.github.Installation(inst).RepoReadToken(ctx, f.sim.RepoID("acme/web")); err != nil || tok.Value == "" {
		t.Fatalf("installation call after setup: %v", err)
	}
	if mints := f.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens"); len(mints) != 1 || mints[0].Credential != githubsim.CredentialJWT {
		t.Fatalf("token mints = %+v, want one made with the new App's JWT", mints)
	}

	var row string
	if err := f.st.DB().QueryRow(`SELECT t::text FROM github_app t`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"private key": string(f.sim.PrivateKeyPEM()), "webhook secret": f.sim.WebhookSecret(), "client secret": f.sim.ClientSecret()} {
		if strings.Contains(row, secret) || strings.Contains(row, hex.EncodeToString([]byte(secret))) {
			t.Errorf("github_app row holds the %s in the clear", name)
		}
	}
	logs := f.logs.String()
	if strings.Contains(logs, f.sim.ClientSecret()) || strings.Contains(logs, f.sim.WebhookSecret()) || strings.Contains(logs, "PRIVATE KEY") {
		t.Fatal("the server log holds a credential")
	}

	// Sign-in works with the new App, in the same process, with nothing restarted.
	f.sim.AddUser("octocat")
	f.sim.SetAuthorizeAs("octocat")
	resp, body = f.get(f.browser(), "/auth/github/login")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("sign-in after setup ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, body)
	}
}

func TestSetupCallback_UnusableCodeShowsClearError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spoil func(f *fixture, code string)
	}{
		{"code already converted", func(f *fixture, code string) {
			resp, err := http.Post(f.ep.API+"app-manifests/"+code+"/conversions", "application/json", nil)
			if err != nil || resp.StatusCode != http.StatusCreated {
				f.t.Fatalf("first conversion: %v %v", resp, err)
			}
			resp.Body.Close()
		}},
		{"code older than an hour", func(f *fixture, _ string) { f.clock.Advance(61 * time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, appcreds.Credentials{})
			c := f.browser()
			back := f.callbackURL(c)
			u, _ := url.Parse(back)
			tt.spoil(f, u.Query().Get("code"))
			resp, body := f.get(c, back)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used or is older than one hour") || !strings.Contains(body, "Start again") {
				t.Fatalf("callback with a spent code: %d\n%s", resp.StatusCode, body)
			}
			if _, ok, _ := f.creds.Current(context.Background()); ok {
				t.Fatal("an App was stored from a spent code")
			}
		})
	}
}

func TestSetupCallback_ReplayAfterSetupConvertsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	c := f.browser()
	back := f.configure(c, "first callback")
	for _, who := range []*http.Client{c, f.browser()} {
		resp, body := f.get(who, back)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already has a GitHub App") {
			t.Fatalf("replayed callback: %d\n%s", resp.StatusCode, body)
		}
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, conversions)); n != 1 {
		t.Fatalf("%d conversions, want 1", n)
	}
	if resp, body := f.get(f.browser(), "/setup"); resp.StatusCode != http.StatusOK || strings.Contains(body, `name="manifest"`) {
		t.Fatalf("anonymous /setup after setup offers a new registration: %d", resp.StatusCode)
	}
}

func TestSetupCallback_StateFromAnotherBrowserIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	owner := f.browser()
	back := f.callbackURL(owner)
	u, _ := url.Parse(back)
	tampered := *u
	q := tampered.Query()
	q.Set("state", "forged")
	tampered.RawQuery = q.Encode()

	for name, try := range map[string]struct {
		c    *http.Client
		url  string
		want int
		says string
	}{
		// Another browser holds no setup token either.
		"another browser":     {f.browser(), back, http.StatusForbidden, "server printed in its log"},
		"forged state":        {owner, tampered.String(), http.StatusBadRequest, "Start again"},
		"no state, same code": {f.browser(), f.srv.URL + "/setup/callback?code=" + u.Query().Get("code"), http.StatusForbidden, "server printed in its log"},
	} {
		resp, body := f.get(try.c, try.url)
		if resp.StatusCode != try.want || !strings.Contains(body, try.says) {
			t.Fatalf("%s: %d, want %d saying %q\n%s", name, resp.StatusCode, try.want, try.says, body)
		}
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, conversions)); n != 0 {
		t.Fatalf("a refused callback converted the code (%d calls)", n)
	}
	// The forged attempt cleared the owner's state cookie; the owner starts again and finishes.
	f.configure(owner, "owner's own setup")
}

func TestSetup_OrganizationOwnsTheApp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	action, _ := f.form(f.browser(), "?org=acme-inc")
	if !strings.HasPrefix(action, f.ep.Web+"/organizations/acme-inc/settings/apps/new?state=") {
		t.Fatalf("form posts to %q, want the organization's new-app page", action)
	}
	resp, body := f.get(f.browser(), "/setup?org="+url.QueryEscape("../evil")+"&token="+url.QueryEscape(f.token))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not a GitHub organization name") ||
		!strings.Contains(body, html.EscapeString(f.ep.Web+"/settings/apps/new?state=")) {
		t.Fatalf("bad org name: %d\n%s", resp.StatusCode, body)
	}
}

func TestSetup_EnvironmentAppIsShownNotReplaced(t *testing.T) {
	t.Parallel()
	sim := githubsim.New(githubsim.Options{})
	env := appcreds.Credentials{AppID: 31337, PrivateKeyPEM: sim.PrivateKeyPEM(), WebhookSecret: "w", ClientID: "Iv1.x", ClientSecret: "s"}
	f := newFixture(t, env)
	resp, body := f.get(f.browser(), "/setup")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "environment variables") || !strings.Contains(body, "31337") || strings.Contains(body, `name="manifest"`) {
		t.Fatalf("/setup with an environment App: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = f.get(f.browser(), "/setup/callback?code=abc&state=def")
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("callback with an environment App: %d, want 409", resp.StatusCode)
	}
}

func TestSetupInstalled_SendsToTheDashboard(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	resp, body := f.get(f.browser(), "/setup/installed?installation_id=42&setup_action=install")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || !strings.Contains(body, "dashboard at /") {
		t.Fatalf("after install: %s %d %s", resp.Request.URL, resp.StatusCode, body)
	}
}
