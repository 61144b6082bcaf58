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

	"github.com/stagely/stagely/app/ctxsleep"
)

// DefaultAPIURL is GitHub's REST API base, used when Options.APIURL is empty.
const DefaultAPIURL = "https://api.github.com/"

// DefaultWebURL is GitHub's web base, used when Options.WebURL is empty.
const DefaultWebURL = "https://github.com"

// userAgent names us to GitHub, which asks every client to send one.
const userAgent = "stagely"

// Options are the explicit dependencies of an App (New) or a Client (NewClient).
type Options struct {
	// AppID is the GitHub App's numeric id (the JWT `iss`); New only.
	AppID int64
	// PrivateKeyPEM is the App's private key as GitHub hands it out (PKCS#1), or PKCS#8; New only.
	PrivateKeyPEM []byte
	// AppKey says which App a Client acts as, asked again on every installation call, so an App
	// that appears later (stored by /setup) is used from the next call on; NewClient only. Its
	// error (appcreds says "no GitHub App is configured") is what installation calls return then.
	AppKey func(ctx context.Context) (appID int64, privateKeyPEM []byte, err error)
	// APIURL is the REST API base (STAGELY_GITHUB_API_URL); empty means DefaultAPIURL.
	APIURL string
	// WebURL is GitHub's web base (STAGELY_GITHUB_URL), home of the OAuth endpoints; empty means
	// DefaultWebURL; NewClient only.
	WebURL string
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

// conn is what every call shares, the App's, a user's and the anonymous ones: the API base and
// the one retrying, logging transport on the wire.
type conn struct {
	apiURL  *url.URL
	wire    http.RoundTripper
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	// maxRetries and sleep shape the retries of writes (writes.go), as they do the transport's.
	maxRetries int
	sleep      func(context.Context, time.Duration) error
}

func newConn(opts Options) (*conn, error) {
	raw := opts.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	apiURL, err := absoluteURL("github api url", raw)
	if err != nil {
		return nil, err
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
		sleep = ctxsleep.Sleep
	}
	return &conn{
		apiURL: apiURL, wire: newRetryTransport(base, log, retries, sleep, now),
		timeout: timeout, log: log, now: now, maxRetries: retries, sleep: sleep,
	}, nil
}

// client is a go-github client on rt, which ends on the wire.
func (c *conn) client(rt http.RoundTripper) *gh.Client {
	cl := gh.NewClient(&http.Client{Transport: rt, Timeout: c.timeout})
	u := *c.apiURL
	cl.BaseURL = &u
	cl.UploadURL = &u
	cl.UserAgent = userAgent
	return cl
}

// App is the GitHub App: it signs JWTs and hands out one cached client per installation.
type App struct {
	*conn
	appID int64
	key   *rsa.PrivateKey
	// appClient authenticates with the App JWT, for the endpoints that "must use a JWT".
	appClient *gh.Client

	mu            sync.Mutex
	installations map[int64]*Installation
}

// New checks the options and builds an App; a key that is not an RSA private key in PEM is an error.
func New(opts Options) (*App, error) {
	c, err := newConn(opts)
	if err != nil {
		return nil, err
	}
	return newApp(c, opts.AppID, opts.PrivateKeyPEM)
}

func newApp(c *conn, appID int64, keyPEM []byte) (*App, error) {
	if appID <= 0 {
		return nil, errors.New("github app: app id must be a positive number")
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("github app private key: %w", err)
	}
	a := &App{conn: c, appID: appID, key: key, installations: map[int64]*Installation{}}
	a.appClient = c.client(a.appsTransport())
	return a, nil
}

// appsTransport gives a fresh JWT transport. Each user gets its own because ghinstallation's
// installation transport writes to its AppsTransport's fields on every token refresh.
func (a *App) appsTransport() *ghinstallation.AppsTransport {
	atr := ghinstallation.NewAppsTransportFromPrivateKey(a.wire, a.appID, a.key)
	atr.BaseURL = strings.TrimSuffix(a.apiURL.String(), "/")
	return atr
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
	in := &Installation{id: installationID, conn: a.conn, client: a.conn.client(itr)}
	in.app = func(context.Context) (*App, error) { return a, nil }
	a.installations[installationID] = in
	return in
}

// Installation is a client acting as one installation of the App; safe for concurrent use.
type Installation struct {
	id   int64
	conn *conn
	// app is the App this installation belongs to at the time of a call: always the same one
	// for App.Installation, whatever the Client's AppKey names now for Client.Installation.
	app func(ctx context.Context) (*App, error)
	// client carries the installation token; set on the App's own cached Installation only.
	client *gh.Client
}

// ID is the installation's id.
func (in *Installation) ID() int64 { return in.id }

// clients gives the App and the installation-token client to make a call with, or the reason
// there is no App to make it as.
func (in *Installation) clients(ctx context.Context) (*App, *gh.Client, error) {
	a, err := in.app(ctx)
	if err != nil {
		return nil, nil, err
	}
	return a, a.Installation(in.id).client, nil
}

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

// absoluteURL parses raw and refuses anything but an http(s) URL with a host.
func absoluteURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: want an absolute http(s) URL", what, raw)
	}
	return u, nil
}

// splitRepo turns "owner/name" into its parts.
func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q: want owner/name", repo)
	}
	return owner, name, nil
}
