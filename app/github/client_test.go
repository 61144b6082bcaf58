package github_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/githubsim"
)

// client is a Client on the fixture's Sim (API and web on one host), logging into f.logs.
func (f *fixture) client(t *testing.T, appKey func(context.Context) (int64, []byte, error)) *github.Client {
	t.Helper()
	base := f.sim.Endpoints().API
	c, err := github.NewClient(github.Options{
		AppKey: appKey, APIURL: base, WebURL: base,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:  f.sleeps.Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signIn makes login a member of the fixture's installation and returns its user token, got
// through the Client's own code exchange.
func (f *fixture) signIn(t *testing.T, c *github.Client, login string) string {
	t.Helper()
	f.sim.AddUser(login)
	if err := f.sim.AddInstallationMember(f.inst, login); err != nil {
		t.Fatal(err)
	}
	f.sim.SetAuthorizeAs(login)
	const callback = "https://stagely.example/auth/github/callback"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(c.AuthorizeURL(f.sim.ClientID(), callback, "st"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize answered %d %q, want a redirect with a code and the state", resp.StatusCode, resp.Header.Get("Location"))
	}
	oc := github.OAuthClient{ID: f.sim.ClientID(), Secret: f.sim.ClientSecret()}
	tok, err := c.ExchangeCode(context.Background(), oc, loc.Query().Get("code"), callback)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.ExpiresIn <= 0 || tok.RefreshToken == "" {
		t.Fatalf("exchanged token = %v: want an expiring access token with a refresh token", tok)
	}
	if _, err := c.ExchangeCode(context.Background(), oc, loc.Query().Get("code"), callback); !isOAuthError(err, "bad_verification_code") {
		t.Fatalf("second exchange of one code: err = %v, want bad_verification_code", err)
	}
	return tok.AccessToken
}

func isOAuthError(err error, code string) bool {
	var oe *github.OAuthError
	return errors.As(err, &oe) && oe.Code == code
}

func TestClientInstallation_AnswersTheAppKeyErrorUntilThereIsAnAppThenActsAsIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	noApp := errors.New("no GitHub App yet")
	var configured atomic.Bool
	c := f.client(t, func(context.Context) (int64, []byte, error) {
		if !configured.Load() {
			return 0, nil, noApp
		}
		return f.sim.AppID(), f.sim.PrivateKeyPEM(), nil
	})
	early := c.Installation(f.inst)
	if _, err := early.ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); !errors.Is(err, noApp) {
		t.Fatalf("ReadFile without an App: err = %v, want the AppKey error", err)
	}
	if _, err := early.RepoReadToken(ctx, f.sim.RepoID(repoWeb)); !errors.Is(err, noApp) {
		t.Fatalf("RepoReadToken without an App: err = %v, want the AppKey error", err)
	}
	if _, err := early.CreateCheckRun(ctx, repoWeb, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: f.sha1}); !errors.Is(err, noApp) {
		t.Fatalf("CreateCheckRun without an App: err = %v, want the AppKey error", err)
	}
	if err := early.CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{State: "pending"}); !errors.Is(err, noApp) {
		t.Fatalf("CreateStatus without an App: err = %v, want the AppKey error", err)
	}
	if n := len(f.sim.Calls()); n != 0 {
		t.Fatalf("%d calls reached GitHub without an App", n)
	}

	configured.Store(true)
	for _, in := range []*github.Installation{early, c.Installation(f.inst)} {
		if got, err := in.ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil || string(got) != "version: \"1.0\"\n" {
			t.Fatalf("ReadFile once there is an App = %q, %v", got, err)
		}
	}
	// Both handles act as one App, which shares one installation token.
	if mints := f.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens"); len(mints) != 1 {
		t.Fatalf("%d token mints, want 1 shared by every handle of the installation", len(mints))
	}
	if n := strings.Count(f.logs.String(), "acting as GitHub App"); n != 1 {
		t.Fatalf("the switch to the App was logged %d times, want once", n)
	}
}

func TestUserCalls_SeeWhatTheUserSeesThroughTheRetryingTransport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, nil)
	token := f.signIn(t, c, "octocat")

	profile, err := c.UserProfile(ctx, token)
	if err != nil || profile.Login != "octocat" || profile.ID == 0 {
		t.Fatalf("UserProfile = %+v, %v", profile, err)
	}
	// A 502 on the way is retried like any App call, not handed to the dashboard.
	f.faults.fail(http.MethodGet, "/user/installations", 1, http.StatusBadGateway, nil, `{"message":"Server Error"}`)
	ins, err := c.UserInstallations(ctx, token)
	if err != nil || len(ins) != 1 || ins[0].ID != f.inst || ins[0].AccountLogin != "acme" || !ins[0].SuspendedAt.IsZero() {
		t.Fatalf("UserInstallations = %+v, %v", ins, err)
	}
	if n := len(f.sleeps.waited.All()); n != 1 {
		t.Fatalf("%d waits before retrying, want 1", n)
	}
	repos, err := c.UserRepositories(ctx, token, f.inst)
	if err != nil || len(repos) != 2 {
		t.Fatalf("UserRepositories = %+v, %v", repos, err)
	}
	for _, r := range repos {
		if r.ID != f.sim.RepoID(r.FullName) || r.DefaultBranch != "main" || r.Name != strings.TrimPrefix(r.FullName, "acme/") {
			t.Errorf("repository %+v does not match the Sim's", r)
		}
	}

	_, err = c.UserRepositories(ctx, token, f.inst+1000)
	if !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("repositories of an installation the user cannot see: err = %v, want ErrNotFound", err)
	}
	var ae *github.APIError
	if _, err := c.UserInstallations(ctx, "ghu_revoked"); !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a refused token: err = %v, want an APIError with 401", err)
	}
	if strings.Contains(f.logs.String(), token) {
		t.Fatal("the user token appears in the log")
	}
}

func TestConvertManifest_HandsOverTheNewAppAndNeverShowsTheCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, nil)
	base := f.sim.Endpoints().API
	manifest := `{"name":"Stagely Test","url":"https://stagely.example","hook_attributes":{"url":"https://stagely.example/webhooks/github"},"redirect_url":"https://stagely.example/setup/callback"}`
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(base+"settings/apps/new?state=s", url.Values{"manifest": {manifest}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("new-app page answered %d %q, want a redirect with a code", resp.StatusCode, resp.Header.Get("Location"))
	}

	reg, err := c.ConvertManifest(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID != f.sim.AppID() || reg.Slug != "stagely-test" || !bytes.Equal(reg.PrivateKeyPEM, f.sim.PrivateKeyPEM()) ||
		reg.WebhookSecret != f.sim.WebhookSecret() || reg.ClientID != f.sim.ClientID() || reg.ClientSecret != f.sim.ClientSecret() {
		t.Fatalf("registration %v is not the App the Sim created", reg)
	}
	if s := reg.String(); strings.Contains(s, reg.ClientSecret) || strings.Contains(s, reg.WebhookSecret) || strings.Contains(s, "PRIVATE KEY") {
		t.Fatalf("AppRegistration prints its secrets: %s", s)
	}

	_, err = c.ConvertManifest(ctx, code)
	var ae *github.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		t.Fatalf("second conversion: err = %v, want an APIError with 404", err)
	}
	if strings.Contains(err.Error(), code) {
		t.Fatalf("the error names the one-time code: %v", err)
	}
	logs := f.logs.String()
	if strings.Contains(logs, code) || !strings.Contains(logs, "/app-manifests/{code}/conversions") {
		t.Fatalf("the log names the code, or not the call:\n%s", logs)
	}
	if n := len(f.sim.CallsWith(githubsim.CredentialNone)); n == 0 {
		t.Fatal("the conversion was not made without credentials")
	}
}

func TestNewClient_RefusesURLsThatAreNotHTTP(t *testing.T) {
	t.Parallel()
	for _, opts := range []github.Options{{APIURL: "api.github.com"}, {WebURL: "github.com"}, {WebURL: "https://"}} {
		if _, err := github.NewClient(opts); err == nil || !strings.Contains(err.Error(), "absolute http(s) URL") {
			t.Errorf("NewClient(%+v): err = %v, want a refusal", opts, err)
		}
	}
}
