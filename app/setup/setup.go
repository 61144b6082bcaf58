// Package setup creates Stagely's GitHub App through GitHub's manifest flow at /setup: the page
// posts app-manifest.yml to GitHub's new-app page, GitHub sends back a one-time code, and the
// callback converts it into the App's credentials, which appcreds seals and starts using at once.
// Once an App exists, /setup only shows it; see docs/github-app.md.
package setup

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/config"
)

// stateCookie binds a registration to the browser that started it.
const stateCookie = "stagely_setup_state"

// stateTTL is GitHub's own limit: "You must complete all three steps … within one hour."
const stateTTL = time.Hour

// maxConversionBody bounds GitHub's conversion answer (it holds a PEM key, a few KiB).
const maxConversionBody = 1 << 20

// orgName is GitHub's rule for account names: alphanumerics and single hyphens, up to 39.
var orgName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)

// Creds is where the App's credentials live (appcreds.Provider).
type Creds interface {
	App(ctx context.Context) (appcreds.App, bool, error)
	Store(ctx context.Context, app appcreds.App) error
}

var _ Creds = (*appcreds.Provider)(nil)

// Options are the setup pages' dependencies.
type Options struct {
	Creds Creds
	// GitHubURL is github.com (the new-app page and the install page live there).
	GitHubURL string
	// APIURL is the REST API base (POST /app-manifests/{code}/conversions).
	APIURL string
	// PublicURL is rendered into the manifest: webhook, callback and setup URLs.
	PublicURL  string
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Setup serves /setup.
type Setup struct {
	creds        Creds
	githubURL    string
	apiURL       string
	manifest     []byte // app-manifest.yml rendered for PublicURL, as JSON
	pretty       []byte // the same, indented for the page
	githubOrigin string
	secure       bool
	client       *http.Client
	log          *slog.Logger
}

// New renders the manifest for the public URL and builds the setup pages.
func New(o Options) (*Setup, error) {
	if o.Creds == nil {
		return nil, errors.New("setup: Creds is required")
	}
	for what, raw := range map[string]string{"GitHub URL": o.GitHubURL, "GitHub API URL": o.APIURL, "public URL": o.PublicURL} {
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
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Setup{
		creds: o.Creds, githubURL: strings.TrimRight(o.GitHubURL, "/"), apiURL: strings.TrimRight(o.APIURL, "/"),
		manifest: manifest, pretty: pretty, githubOrigin: gh.Scheme + "://" + gh.Host, secure: strings.HasPrefix(o.PublicURL, "https://"), client: o.HTTPClient, log: o.Logger,
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
	app, err := s.convert(ctx, code)
	var used *codeRefused
	switch {
	case errors.As(err, &used):
		s.log.Warn("manifest code refused", "status", used.status)
		s.render(c, http.StatusBadRequest, startAgain("GitHub did not accept the registration code: it was already used or is older than one hour."))
		return
	case err != nil:
		s.log.Error("convert manifest code", "err", err)
		s.render(c, http.StatusBadGateway, startAgain("Stagely could not fetch the new App's credentials from GitHub."))
		return
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
	s.log.Info("GitHub App registered", "app_id", app.Credentials.AppID, "slug", app.Slug)
	c.Redirect(http.StatusSeeOther, "/setup")
}

// installed is the App's setup_url: GitHub sends people here after they install the App.
func (s *Setup) installed(c *gin.Context) {
	c.Redirect(http.StatusFound, "/")
}

// codeRefused is GitHub's answer to a used, expired or unknown manifest code.
type codeRefused struct{ status int }

func (e *codeRefused) Error() string {
	return fmt.Sprintf("GitHub refused the manifest code (HTTP %d)", e.status)
}

// convert exchanges the one-time code for the App's credentials (no authentication needed).
func (s *Setup) convert(ctx context.Context, code string) (appcreds.App, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.apiURL+"/app-manifests/"+url.PathEscape(code)+"/conversions", nil)
	if err != nil {
		return appcreds.App{}, fmt.Errorf("build conversion request: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL names the one-time code, which buys the App's keys for an hour: keep it out.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return appcreds.App{}, fmt.Errorf("post manifest conversion: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnprocessableEntity:
		return appcreds.App{}, &codeRefused{status: resp.StatusCode}
	case resp.StatusCode != http.StatusCreated:
		return appcreds.App{}, fmt.Errorf("manifest conversion: GitHub answered %s", resp.Status)
	}
	var body struct {
		ID            int64  `json:"id"`
		Slug          string `json:"slug"`
		HTMLURL       string `json:"html_url"`
		ClientID      string `json:"client_id"`
		ClientSecret  string `json:"client_secret"`
		WebhookSecret string `json:"webhook_secret"`
		PEM           string `json:"pem"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxConversionBody)).Decode(&body); err != nil {
		return appcreds.App{}, fmt.Errorf("decode manifest conversion: %w", err)
	}
	return appcreds.App{
		Credentials: config.AppCredentials{
			AppID: body.ID, PrivateKeyPEM: []byte(body.PEM), WebhookSecret: body.WebhookSecret,
			ClientID: body.ClientID, ClientSecret: body.ClientSecret,
		},
		Slug: body.Slug, HTMLURL: body.HTMLURL,
	}, nil
}

func clearState(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/setup", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
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
