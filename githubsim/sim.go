// Package githubsim is a stateful, in-process simulator of the parts of GitHub that Stagely talks to:
// the REST API (App JWT, installation tokens, repositories, contents, tarballs, checks, statuses,
// deployments, users), the github.com web flows (OAuth authorize, App manifest) and signed webhook
// deliveries. Its shapes, status codes and limits follow GitHub's published REST description; see
// docs/githubsim.md for what is simulated and where it deviates.
package githubsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Options configures a Sim; the zero value gives a working App with generated credentials.
type Options struct {
	// AppID is the GitHub App's numeric id (default 1000001).
	AppID int64
	// AppSlug is the App's URL name (default "stagely-sim").
	AppSlug string
	// AppName is the App's display name (default "Stagely (sim)").
	AppName string
	// PrivateKey is the App's RSA key; nil generates a 2048-bit key.
	PrivateKey *rsa.PrivateKey
	// WebhookSecret signs deliveries (default: random).
	WebhookSecret string
	// ClientID is the App's OAuth client id (default: "Iv1." + random hex).
	ClientID string
	// ClientSecret is the App's OAuth client secret (default: random hex).
	ClientSecret string
	// CallbackURLs are the App's registered OAuth callback URLs; when empty, any redirect_uri is accepted.
	CallbackURLs []string
	// HookID is the App webhook's id sent as X-GitHub-Hook-ID (default 400000001).
	HookID int64
	// Now is the clock (default time.Now); tests move it to expire tokens, codes and download URLs.
	Now func() time.Time
	// HTTPClient delivers webhooks (default: a client with a 10 s timeout, GitHub's own limit).
	HTTPClient *http.Client
	// Logger receives one line per delivery; never tokens (default: discard).
	Logger *slog.Logger
}

// Endpoints are the base URLs of a started Sim.
type Endpoints struct {
	// API is the REST API base with a trailing slash (STAGELY_GITHUB_API_URL).
	API string
	// Web is the github.com side: OAuth and manifest pages (STAGELY_GITHUB_URL).
	Web string
	// Download is the separate host that serves tarballs, like codeload.github.com.
	Download string
}

// Sim is one simulated GitHub with one App; all methods are safe for concurrent use.
type Sim struct {
	now    func() time.Time
	client *http.Client
	log    *slog.Logger

	mu sync.Mutex
	st state

	rateMu sync.Mutex
	rate   map[string]int // requests per credential, for X-RateLimit-Used

	api      *httptest.Server
	download *httptest.Server
	// outbox makes the redeliveries asked for through the API.
	outbox *outbox
}

// New builds a Sim; it panics only if the system's random source fails, as crypto/rand does.
func New(opts Options) *Sim {
	if opts.AppID == 0 {
		opts.AppID = 1000001
	}
	if opts.AppSlug == "" {
		opts.AppSlug = "stagely-sim"
	}
	if opts.AppName == "" {
		opts.AppName = "Stagely (sim)"
	}
	if opts.PrivateKey == nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("githubsim: generate app key: %v", err))
		}
		opts.PrivateKey = key
	}
	if opts.WebhookSecret == "" {
		opts.WebhookSecret = randomHex(20)
	}
	if opts.ClientID == "" {
		opts.ClientID = "Iv1." + randomHex(8)
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = randomHex(20)
	}
	if opts.HookID == 0 {
		opts.HookID = 400000001
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{now: opts.Now, client: opts.HTTPClient, log: opts.Logger, rate: map[string]int{}, outbox: newOutbox()}
	created := opts.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	s.st = state{
		nextID: 5000000,
		app: app{
			id:            opts.AppID,
			slug:          opts.AppSlug,
			name:          opts.AppName,
			key:           opts.PrivateKey,
			webhookSecret: opts.WebhookSecret,
			clientID:      opts.ClientID,
			clientSecret:  opts.ClientSecret,
			callbackURLs:  append([]string(nil), opts.CallbackURLs...),
			hookID:        opts.HookID,
			ownerLogin:    "stagely",
			ownerID:       4000001,
			permissions:   defaultAppPermissions(),
			events:        []string{"check_run", "check_suite", "deployment", "pull_request", "push"},
			createdAt:     created,
		},
		users:         map[string]*user{},
		installations: map[int64]*installation{},
		repos:         map[string]*repo{},
		tokens:        map[string]*token{},
		checkRuns:     map[int64]*checkRun{},
		suites:        map[suiteKey]*checkSuite{},
		deployments:   map[int64]*deployment{},
		comments:      map[int64]*issueComment{},
		downloads:     map[string]*download{},
		oauthCodes:    map[string]*oauthCode{},
		manifestCodes: map[string]*manifestCode{},
	}
	return s
}

// Start serves the Sim on two loopback listeners (API + web, and the download host) until Close.
func (s *Sim) Start() Endpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.api == nil {
		s.api = httptest.NewServer(s.Handler())
		s.download = httptest.NewServer(s.DownloadHandler())
		s.st.baseURL = s.api.URL
		s.st.downloadURL = s.download.URL
	}
	return s.endpointsLocked()
}

// SetBaseURLs tells a Sim served by the caller's own listeners where it lives, so that the URLs it
// puts in bodies and redirects point back at it.
func (s *Sim) SetBaseURLs(base, download string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.baseURL = strings.TrimSuffix(base, "/")
	s.st.downloadURL = strings.TrimSuffix(download, "/")
}

// Endpoints returns the base URLs the Sim currently answers on.
func (s *Sim) Endpoints() Endpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpointsLocked()
}

func (s *Sim) endpointsLocked() Endpoints {
	return Endpoints{API: s.st.baseURL + "/", Web: s.st.baseURL, Download: s.st.downloadURL}
}

// Close stops the listeners started by Start and the redeliveries still queued.
func (s *Sim) Close() {
	s.mu.Lock()
	api, dl := s.api, s.download
	s.api, s.download = nil, nil
	s.mu.Unlock()
	if api != nil {
		api.Close()
		dl.Close()
	}
	s.outbox.close()
}

// theApp is a copy of the App's record, read under the lock; the getters below answer from it.
func (s *Sim) theApp() app {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.app
}

// AppID is the App's numeric id (the JWT `iss`).
func (s *Sim) AppID() int64 { return s.theApp().id }

// AppSlug is the App's URL name.
func (s *Sim) AppSlug() string { return s.theApp().slug }

// PrivateKeyPEM is the App's private key as PKCS#1 PEM, the form GitHub hands out.
func (s *Sim) PrivateKeyPEM() []byte { a := s.theApp(); return a.pem() }

// WebhookSecret is the secret deliveries are signed with.
func (s *Sim) WebhookSecret() string { return s.theApp().webhookSecret }

// ClientID is the App's OAuth client id.
func (s *Sim) ClientID() string { return s.theApp().clientID }

// ClientSecret is the App's OAuth client secret.
func (s *Sim) ClientSecret() string { return s.theApp().clientSecret }

// ServerEnv returns the environment that points a stagely-server at this started Sim as its
// GitHub and makes it the Sim's App (docs/configuration.md): the API and web URLs, the App's
// id and key, the webhook secret and the OAuth client.
func (s *Sim) ServerEnv() []string {
	ep, a := s.Endpoints(), s.theApp()
	return []string{
		"STAGELY_GITHUB_API_URL=" + ep.API,
		"STAGELY_GITHUB_URL=" + ep.Web,
		fmt.Sprintf("STAGELY_GITHUB_APP_ID=%d", a.id),
		"STAGELY_GITHUB_APP_PRIVATE_KEY=" + string(a.pem()),
		"STAGELY_GITHUB_WEBHOOK_SECRET=" + a.webhookSecret,
		"STAGELY_GITHUB_CLIENT_ID=" + a.clientID,
		"STAGELY_GITHUB_CLIENT_SECRET=" + a.clientSecret,
	}
}

// SetWebhookURL sets where deliveries go; empty stops deliveries.
func (s *Sim) SetWebhookURL(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.app.webhookURL = url
}

func (a *app) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(a.key)})
}
