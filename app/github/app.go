package github

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
)

// DefaultAPIURL is GitHub's REST API base, used when Options.APIURL is empty.
const DefaultAPIURL = "https://api.github.com/"

// userAgent names us to GitHub, which asks every client to send one.
const userAgent = "stagely"

// Options are the explicit dependencies of an App.
type Options struct {
	// AppID is the GitHub App's numeric id (the JWT `iss`).
	AppID int64
	// PrivateKeyPEM is the App's private key as GitHub hands it out (PKCS#1), or PKCS#8.
	PrivateKeyPEM []byte
	// APIURL is the REST API base (STAGELY_GITHUB_API_URL); empty means DefaultAPIURL.
	APIURL string
	// HTTPClient supplies the base transport and timeout; nil means http.DefaultTransport, no timeout.
	HTTPClient *http.Client
	// Logger receives one debug line per call and one warning per retry; never credentials.
	Logger *slog.Logger
	// MaxRetries is how many times a failed call is retried: 0 means 4 (5 attempts), negative means none.
	MaxRetries int
	// Sleep waits between attempts; nil waits on a timer and stops early when ctx ends.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used for rate-limit resets and completed_at; nil means time.Now.
	Now func() time.Time
}

// App is the GitHub App: it signs JWTs and hands out one cached client per installation.
type App struct {
	appID  int64
	key    *rsa.PrivateKey
	apiURL *url.URL
	// wire is the retrying, logging transport every request ends on, JWT and installation alike.
	wire    http.RoundTripper
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	// appClient authenticates with the App JWT, for the endpoints that "must use a JWT".
	appClient *gh.Client

	mu            sync.Mutex
	installations map[int64]*Installation
}

// New checks the options and builds an App; a key that is not an RSA private key in PEM is an error.
func New(opts Options) (*App, error) {
	if opts.AppID <= 0 {
		return nil, errors.New("github app: app id must be a positive number")
	}
	key, err := parsePrivateKey(opts.PrivateKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("github app private key: %w", err)
	}
	raw := opts.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	apiURL, err := url.Parse(raw)
	if err != nil || (apiURL.Scheme != "http" && apiURL.Scheme != "https") || apiURL.Host == "" {
		return nil, fmt.Errorf("github api url %q: want an absolute http(s) URL", raw)
	}
	// go-github resolves paths against BaseURL, which must end in a slash.
	if !strings.HasSuffix(apiURL.Path, "/") {
		apiURL.Path += "/"
	}
	base := http.DefaultTransport
	var timeout time.Duration
	if opts.HTTPClient != nil {
		if opts.HTTPClient.Transport != nil {
			base = opts.HTTPClient.Transport
		}
		timeout = opts.HTTPClient.Timeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	retries := opts.MaxRetries
	switch {
	case retries == 0:
		retries = defaultMaxRetries
	case retries < 0:
		retries = 0
	}
	sleep := opts.Sleep
	if sleep == nil {
		sleep = sleepContext
	}
	a := &App{
		appID:         opts.AppID,
		key:           key,
		apiURL:        apiURL,
		wire:          newRetryTransport(base, log, retries, sleep, now),
		timeout:       timeout,
		log:           log,
		now:           now,
		installations: map[int64]*Installation{},
	}
	a.appClient = a.newClient(a.appsTransport())
	return a, nil
}

// appsTransport gives a fresh JWT transport. Each user gets its own because ghinstallation's
// installation transport writes to its AppsTransport's fields on every token refresh.
func (a *App) appsTransport() *ghinstallation.AppsTransport {
	atr := ghinstallation.NewAppsTransportFromPrivateKey(a.wire, a.appID, a.key)
	atr.BaseURL = strings.TrimSuffix(a.apiURL.String(), "/")
	return atr
}

func (a *App) newClient(rt http.RoundTripper) *gh.Client {
	c := gh.NewClient(&http.Client{Transport: rt, Timeout: a.timeout})
	u := *a.apiURL
	c.BaseURL = &u
	c.UploadURL = &u
	c.UserAgent = userAgent
	return c
}

// Installation returns the client for one installation, built once and then reused, so its
// installation token (valid one hour, refreshed a minute early) is shared by every caller.
func (a *App) Installation(installationID int64) *Installation {
	a.mu.Lock()
	defer a.mu.Unlock()
	if in, ok := a.installations[installationID]; ok {
		return in
	}
	itr := ghinstallation.NewFromAppsTransport(a.appsTransport(), installationID)
	in := &Installation{id: installationID, app: a, client: a.newClient(itr)}
	a.installations[installationID] = in
	return in
}

// Installation is a client acting as one installation of the App; safe for concurrent use.
type Installation struct {
	id     int64
	app    *App
	client *gh.Client
}

// ID is the installation's id.
func (in *Installation) ID() int64 { return in.id }

func parsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	if len(pemBytes) == 0 {
		return nil, errors.New("empty; set STAGELY_GITHUB_APP_PRIVATE_KEY or STAGELY_GITHUB_APP_PRIVATE_KEY_FILE")
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found (expected -----BEGIN RSA PRIVATE KEY-----)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#1 RSA key: %w", err)
		}
		return key, nil
	case "PRIVATE KEY":
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
		}
		key, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key is %T; GitHub Apps sign with RS256 and need an RSA key", parsed)
		}
		return key, nil
	default:
		return nil, fmt.Errorf("PEM block is %q; want an RSA private key", block.Type)
	}
}

// splitRepo turns "owner/name" into its parts.
func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q: want owner/name", repo)
	}
	return owner, name, nil
}
