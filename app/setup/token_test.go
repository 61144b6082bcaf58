package setup_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/setup"
)

// TestSetup_AStrangerWithoutTheTokenCannotRegisterAnApp is the attack: before any App exists,
// whoever reaches /setup first registers an App of their own, and Stagely then trusts its
// webhooks and sign-ins. Before the fix /setup gave the stranger the form (200) and stored the
// App they registered. Now the page is refused, and so is the callback of a registration the
// stranger starts by hand with a state cookie of their own making.
func TestSetup_AStrangerWithoutTheTokenCannotRegisterAnApp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	stranger := f.browser()
	resp, body := f.get(stranger, "/setup")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, `name="manifest"`) || !strings.Contains(body, "server printed in its log") {
		t.Fatalf("/setup without the token: %d, want 403 saying where the token is\n%s", resp.StatusCode, body)
	}

	// The manifest is public (app-manifest.yml), and the state is only a cookie: the stranger
	// makes both and goes to GitHub directly.
	m, err := appmanifest.Render(f.publicURL)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := m.JSON()
	srvURL, _ := url.Parse(f.srv.URL + "/setup")
	stranger.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "stagely_setup_state", Value: "mine", Path: "/setup"}})
	resp, err = stranger.PostForm(f.ep.Web+"/settings/apps/new?state=mine", url.Values{"manifest": {string(manifest)}})
	if err != nil {
		t.Fatal(err)
	}
	body = apptest.ReadBody(t, resp)
	if resp.Request.URL.Path != "/setup/callback" || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the stranger's own registration ended at %s with %d, want the callback's 403\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, conversions)); n != 0 {
		t.Fatalf("the stranger's code was converted (%d calls)", n)
	}
	if _, ok, _ := f.creds.Current(context.Background()); ok {
		t.Fatal("a stranger registered the App")
	}
}

func TestSetup_OnlyTheRightTokenOpensTheForm(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	srvURL, _ := url.Parse(f.srv.URL + "/setup")
	tests := []struct {
		name   string
		path   string
		cookie string
		want   int
		says   string
	}{
		{"no token", "/setup", "", http.StatusForbidden, "server printed in its log"},
		{"wrong token", "/setup?token=" + strings.Repeat("A", 32), "", http.StatusForbidden, "not the setup token of this server"},
		{"empty token", "/setup?token=", "", http.StatusForbidden, "not the setup token of this server"},
		{"wrong token in the cookie", "/setup", strings.Repeat("A", 32), http.StatusForbidden, "server printed in its log"},
		{"right token", "/setup?token=" + url.QueryEscape(f.token), "", http.StatusOK, `name="manifest"`},
		{"right token in the cookie", "/setup", f.token, http.StatusOK, `name="manifest"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.browser()
			if tt.cookie != "" {
				c.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "stagely_setup_token", Value: tt.cookie, Path: "/setup"}})
			}
			resp, body := f.get(c, tt.path)
			if resp.StatusCode != tt.want || !strings.Contains(body, tt.says) {
				t.Fatalf("%s: %d, want %d with %q\n%s", tt.path, resp.StatusCode, tt.want, tt.says, body)
			}
			if resp.StatusCode == http.StatusOK && resp.Request.URL.Query().Has("token") {
				t.Fatalf("the form's address still holds the token: %s", resp.Request.URL)
			}
			if resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("Referrer-Policy %q: the form's address could reach GitHub", resp.Header.Get("Referrer-Policy"))
			}
		})
	}
}

func TestSetup_TokenIsDeadOnceAnAppExists(t *testing.T) {
	t.Parallel()
	f := newFixture(t, appcreds.Credentials{})
	operator := f.browser()
	f.configure(operator, "the operator's setup")
	// With the token, in the operator's browser or another, nothing can be registered any more.
	for name, c := range map[string]*http.Client{"operator": operator, "another browser": f.browser()} {
		resp, body := f.get(c, "/setup?token="+url.QueryEscape(f.token))
		if resp.StatusCode != http.StatusOK || strings.Contains(body, `name="manifest"`) || !strings.Contains(body, "GitHub App configured") {
			t.Fatalf("%s: /setup with the token after setup: %d\n%s", name, resp.StatusCode, body)
		}
		resp, body = f.get(c, "/setup/callback?code=abc&state=def")
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("%s: callback with the token after setup: %d\n%s", name, resp.StatusCode, body)
		}
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, conversions)); n != 1 {
		t.Fatalf("%d conversions, want the operator's one", n)
	}
}

func TestTokenFromKey_IsTheSameForOneKeyAndUnguessableWithoutIt(t *testing.T) {
	t.Parallel()
	k1, k2 := make([]byte, 32), make([]byte, 32)
	k2[0] = 1
	a, b, c := setup.TokenFromKey(k1), setup.TokenFromKey(k1), setup.TokenFromKey(k2)
	if a != b {
		t.Fatal("two replicas with one key compute different tokens")
	}
	if a == c {
		t.Fatal("two keys give one token")
	}
	if len(a) < 22 || strings.ContainsAny(a, "+/=") {
		t.Fatalf("token %q: want at least 128 bits, URL-safe", a)
	}
}

// noGitHub converts nothing.
type noGitHub struct{}

func (noGitHub) ConvertManifest(context.Context, string) (github.AppRegistration, error) {
	return github.AppRegistration{}, errors.New("not here")
}

func TestNew_RefusesATokenShorterThan128Bits(t *testing.T) {
	t.Parallel()
	for token, ok := range map[string]bool{"": false, "short": false, strings.Repeat("a", 21): false, strings.Repeat("a", 22): true} {
		_, err := setup.New(setup.Options{Creds: &appcreds.Provider{}, GitHub: noGitHub{}, GitHubURL: "https://github.com", PublicURL: "https://s.example", Token: token})
		if (err == nil) != ok {
			t.Errorf("token of %d characters: err = %v", len(token), err)
		}
	}
}
