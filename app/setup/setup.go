// Package setup creates Stagely's GitHub App through GitHub's manifest flow at /setup: the page
// posts app-manifest.yml to GitHub's new-app page, GitHub sends back a one-time code, and the
// callback converts it into the App's credentials, which appcreds seals and starts using at once.
// Until an App exists, only a holder of the setup token (printed in the server's log at start)
// may register one; once an App exists, /setup only shows it. See docs/github-app.md.
package setup

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/github"
)

// stateCookie binds a registration to the browser that started it.
const stateCookie = "stagely_setup_state"

// tokenCookie carries the setup token from the page that opened the form to GitHub's callback.
const tokenCookie = "stagely_setup_token"

// minTokenLen is 128 bits in unpadded base64.
const minTokenLen = 22

// stateTTL is GitHub's own limit: "You must complete all three steps … within one hour."
const stateTTL = time.Hour

// orgName is GitHub's rule for account names: alphanumerics and single hyphens, up to 39.
var orgName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)

// Creds is where the App's credentials live (appcreds.Provider).
type Creds interface {
	App(ctx context.Context) (appcreds.App, bool, error)
	Store(ctx context.Context, app appcreds.App) error
}

var _ Creds = (*appcreds.Provider)(nil)

// GitHub converts the one-time code into the new App's credentials (github.Client does).
type GitHub interface {
	ConvertManifest(ctx context.Context, code string) (github.AppRegistration, error)
}

// Options are the setup pages' dependencies.
type Options struct {
	Creds  Creds
	GitHub GitHub
	// GitHubURL is github.com (the new-app page and the install page live there).
	GitHubURL string
	// PublicURL is rendered into the manifest: webhook, callback and setup URLs.
	PublicURL string
	// Token is the setup token (TokenFromKey): /setup registers an App only for its holder.
	Token  string
	Logger *slog.Logger
}

// Setup serves /setup.
type Setup struct {
	creds        Creds
	github       GitHub
	githubURL    string
	manifest     []byte // app-manifest.yml rendered for PublicURL, as JSON
	pretty       []byte // the same, indented for the page
	githubOrigin string
	secure       bool
	token        []byte
	log          *slog.Logger
}

// TokenFromKey derives the setup token from STAGELY_SECRET_KEY with HMAC-SHA256 (192 bits):
// every replica computes the same token with nothing stored, only the key's holder can compute
// it, and it changes with the key.
func TokenFromKey(key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("stagely /setup token v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:24])
}

// New renders the manifest for the public URL and builds the setup pages.
func New(o Options) (*Setup, error) {
	if o.Creds == nil || o.GitHub == nil {
		return nil, errors.New("setup: Creds and GitHub are required")
	}
	if len(o.Token) < minTokenLen {
		return nil, errors.New("setup: a Token of at least 128 bits is required")
	}
	for what, raw := range map[string]string{"GitHub URL": o.GitHubURL, "public URL": o.PublicURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("setup: %s %q is not an http(s) URL with a host", what, raw)
		}
	}
	m, err := appmanifest.Render(o.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	manifest, err := m.JSON()
	if err != nil {
		return nil, fmt.Errorf("setup: encode app manifest: %w", err)
	}
	pretty, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("setup: encode app manifest: %w", err)
	}
	gh, _ := url.Parse(o.GitHubURL)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Setup{
		creds: o.Creds, github: o.GitHub, githubURL: strings.TrimRight(o.GitHubURL, "/"),
		manifest: manifest, pretty: pretty, githubOrigin: gh.Scheme + "://" + gh.Host, secure: strings.HasPrefix(o.PublicURL, "https://"),
		token: []byte(o.Token), log: o.Logger,
	}, nil
}

// Register mounts GET /setup, GET /setup/callback and GET /setup/installed.
func (s *Setup) Register(r gin.IRouter) {
	r.GET("/setup", s.page)
	r.GET("/setup/callback", s.callback)
	r.GET("/setup/installed", s.installed)
}

// page shows the App when there is one, else the form that registers it on GitHub.
func (s *Setup) page(c *gin.Context) {
	app, ok, err := s.creds.App(c.Request.Context())
	if err != nil {
		s.log.Error("read GitHub App credentials", "err", err)
		s.render(c, http.StatusInternalServerError, view{Title: "GitHub App unreadable", Message: "Stagely has stored GitHub App credentials but cannot open them (was STAGELY_SECRET_KEY changed?). The server log says why."})
		return
	}
	if ok {
		s.render(c, http.StatusOK, s.configuredView(app))
		return
	}
	if !s.holdsToken(c) {
		return
	}
	status, v := http.StatusOK, view{Form: true, Manifest: string(s.manifest), ManifestPretty: string(s.pretty), Owner: "your personal account"}
	newApp := s.githubURL + "/settings/apps/new"
	if org := c.Query("org"); org != "" {
		if orgName.MatchString(org) {
			newApp = s.githubURL + "/organizations/" + org + "/settings/apps/new"
			v.Owner, v.Org = "the organization "+org, org
		} else {
			status, v.Problem = http.StatusBadRequest, fmt.Sprintf("%q is not a GitHub organization name; the App will be created on your personal account.", org)
		}
	}
	state, err := randomState()
	if err != nil {
		s.log.Error("draw setup state", "err", err)
		s.render(c, http.StatusInternalServerError, view{Title: "Setup failed", Message: "Stagely could not start the setup. Reload the page."})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: stateCookie, Value: state, Path: "/setup", MaxAge: int(stateTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	v.Action = newApp + "?" + url.Values{"state": {state}}.Encode()
	v.Title = "Create Stagely's GitHub App"
	s.render(c, status, v)
}

func (s *Setup) configuredView(app appcreds.App) view {
	v := view{Title: "GitHub App configured", Configured: true, AppID: app.Credentials.AppID, Slug: app.Slug, HTMLURL: app.HTMLURL,
		FromEnv: app.Source == appcreds.SourceEnvironment}
	if app.Slug != "" {
		v.InstallURL = s.githubURL + "/apps/" + url.PathEscape(app.Slug) + "/installations/new"
	}
	return v
}

// callback is the manifest's redirect_url: GitHub sends the one-time code and our state here.
func (s *Setup) callback(c *gin.Context) {
	ctx := c.Request.Context()
	ck, cookieErr := c.Request.Cookie(stateCookie)
	tk, tokenErr := c.Request.Cookie(tokenCookie)
	clearState(c.Writer, s.secure)
	// Once an App exists nobody, signed in or not, replaces it from here (docs/github-app.md).
	existing, ok, err := s.creds.App(ctx)
	if err != nil {
		s.log.Error("read GitHub App credentials", "err", err)
		s.render(c, http.StatusInternalServerError, view{Title: "GitHub App unreadable", Message: "Stagely cannot tell whether it already has a GitHub App. The server log says why."})
		return
	}
	if ok {
		v := s.configuredView(existing)
		v.Problem = "Stagely already has a GitHub App, so this registration was not used."
		s.render(c, http.StatusConflict, v)
		return
	}
	// The state alone proves only that one browser started and finished the flow; the token
	// proves it is the operator's (a stranger can mint their own state cookie).
	if tokenErr != nil || !s.tokenOK(tk.Value) {
		s.render(c, http.StatusForbidden, tokenMissing())
		return
	}
	got := c.Query("state")
	if cookieErr != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ck.Value)) != 1 {
		s.render(c, http.StatusBadRequest, startAgain("This answer from GitHub does not belong to a setup started in this browser in the last hour."))
		return
	}
	code := c.Query("code")
	if code == "" {
		s.render(c, http.StatusBadRequest, startAgain("GitHub's answer carried no code."))
		return
	}
	reg, err := s.github.ConvertManifest(ctx, code)
	if err != nil {
		status, v := conversionError(err)
		level := slog.LevelWarn
		if status == http.StatusBadGateway {
			level = slog.LevelError
		}
		s.log.Log(ctx, level, "convert manifest code", "err", err)
		s.render(c, status, v)
		return
	}
	app := appcreds.App{
		Credentials: appcreds.Credentials{
			AppID: reg.ID, PrivateKeyPEM: reg.PrivateKeyPEM, WebhookSecret: reg.WebhookSecret,
			ClientID: reg.ClientID, ClientSecret: reg.ClientSecret,
		},
		Slug: reg.Slug, HTMLURL: reg.HTMLURL,
	}
	if err := s.creds.Store(ctx, app); err != nil {
		s.log.Error("store GitHub App", "app_id", app.Credentials.AppID, "err", err)
		status := http.StatusInternalServerError
		if errors.Is(err, appcreds.ErrAlreadyConfigured) {
			status = http.StatusConflict
		}
		s.render(c, status, view{Title: "GitHub App not saved", Message: fmt.Sprintf(
			"GitHub created the App %q (id %d) but Stagely could not save its credentials. Delete that App in its settings on GitHub (%s) and start again.",
			app.Slug, app.Credentials.AppID, app.HTMLURL), LinkURL: "/setup", LinkText: "Back to setup"})
		return
	}
	setCookie(c.Writer, tokenCookie, "", -1, s.secure)
	s.log.Info("GitHub App registered", "app_id", app.Credentials.AppID, "slug", app.Slug)
	c.Redirect(http.StatusSeeOther, "/setup")
}

// installed is the App's setup_url: GitHub sends people here after they install the App.
func (s *Setup) installed(c *gin.Context) {
	c.Redirect(http.StatusFound, "/")
}

// conversionError is the one mapping from a failed conversion to the page that explains it:
// GitHub answers 404 (and 422) for a code that was used, expired or never issued.
func conversionError(err error) (int, view) {
	var ge *github.APIError
	if errors.As(err, &ge) && (ge.StatusCode == http.StatusNotFound || ge.StatusCode == http.StatusUnprocessableEntity) {
		return http.StatusBadRequest, startAgain("GitHub did not accept the registration code: it was already used or is older than one hour.")
	}
	return http.StatusBadGateway, startAgain("Stagely could not fetch the new App's credentials from GitHub.")
}

func clearState(w http.ResponseWriter, secure bool) { setCookie(w, stateCookie, "", -1, secure) }

// setCookie sets a cookie of the setup pages; maxAge < 0 removes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge int, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/setup", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// holdsToken reports whether the request carries the setup token, and answers it when not. A
// token in the query is moved into a cookie and the browser sent back to the same page
// without it, so the token stays out of the address bar, the history and any Referer.
func (s *Setup) holdsToken(c *gin.Context) bool {
	if q, ok := c.GetQuery("token"); ok {
		if !s.tokenOK(q) {
			s.render(c, http.StatusForbidden, tokenWrong())
			return false
		}
		setCookie(c.Writer, tokenCookie, q, int(stateTTL/time.Second), s.secure)
		rest := c.Request.URL.Query()
		rest.Del("token")
		target := "/setup"
		if len(rest) > 0 {
			target += "?" + rest.Encode()
		}
		c.Redirect(http.StatusSeeOther, target)
		return false
	}
	if ck, err := c.Request.Cookie(tokenCookie); err == nil && s.tokenOK(ck.Value) {
		return true
	}
	s.render(c, http.StatusForbidden, tokenMissing())
	return false
}

// tokenOK compares in constant time; only the length, which is public, can leak.
func (s *Setup) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), s.token) == 1
}

func tokenMissing() view {
	return view{Title: "Setup token required", Message: "This Stagely server has no GitHub App yet, and only its operator may create one. " +
		"Open the link the server printed in its log when it started: the line \"no GitHub App yet\" holds a URL ending in /setup?token=… " +
		"(for example docker logs stagely 2>&1 | grep setup_url)."}
}

func tokenWrong() view {
	return view{Title: "Setup token not accepted", Message: "This is not the setup token of this server. " +
		"Copy the link from the server's log again: the token changes when STAGELY_SECRET_KEY does."}
}

func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func startAgain(why string) view {
	return view{Title: "Setup could not be finished", Message: why + " Start again.", LinkURL: "/setup", LinkText: "Start the setup again"}
}
