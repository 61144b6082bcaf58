// Package appcreds provides the GitHub App's credentials to the rest of the server: from the
// environment when they are configured there, otherwise from the github_app row that /setup
// writes, sealed at rest. The row is read once and kept in memory, so a server started without
// an App starts using one the moment /setup stores it, without a restart.
package appcreds

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// ErrAlreadyConfigured is returned by Store when the server already has an App.
var ErrAlreadyConfigured = errors.New("a GitHub App is already configured")

// ErrNoApp is what everything that needs the App answers until there is one.
var ErrNoApp = errors.New("no GitHub App is configured: finish /setup or set STAGELY_GITHUB_APP_ID, STAGELY_GITHUB_APP_PRIVATE_KEY and STAGELY_GITHUB_WEBHOOK_SECRET")

// Credentials identify the GitHub App.
type Credentials struct {
	AppID         int64
	PrivateKeyPEM []byte
	WebhookSecret string
	ClientID      string
	ClientSecret  string
}

// Configured reports whether these credentials name an App at all.
func (c Credentials) Configured() bool { return c.AppID != 0 }

// String keeps credentials out of logs.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AppID: %d, ClientID: %q, secrets: [redacted]}", c.AppID, c.ClientID)
}

// GoString keeps credentials out of %#v output.
func (c Credentials) GoString() string { return c.String() }

// Source says where the credentials came from.
type Source string

// The two places credentials come from.
const (
	SourceEnvironment Source = "environment"
	SourceSetup       Source = "setup"
)

// App is the GitHub App's identity and secrets with what GitHub told us about it.
type App struct {
	Credentials Credentials
	// Slug and HTMLURL are known for Apps registered through /setup; empty for the environment.
	Slug    string
	HTMLURL string
	Source  Source
}

// Store is the part of the database the provider uses.
type Store interface {
	GitHubAppCredentials(ctx context.Context) (store.GitHubApp, error)
	InTx(ctx context.Context, fn func(tx *store.Store) error) error
}

var _ Store = (*store.Store)(nil)

// Provider hands out the current App credentials; it is safe for concurrent use.
type Provider struct {
	st   Store
	keys *seal.Keyring
	env  Credentials

	mu     sync.Mutex
	cached *App // nil until the row has been read and found
}

// New builds a Provider. env is the configuration's App; when it names one, it always wins.
func New(st Store, keys *seal.Keyring, env Credentials) *Provider {
	return &Provider{st: st, keys: keys, env: env}
}

// sealedSecrets is the JSON document sealed into credentials_encrypted.
type sealedSecrets struct {
	PEM           string `json:"pem"`
	WebhookSecret string `json:"webhook_secret"`
	ClientSecret  string `json:"client_secret"`
}

// Current returns the App's credentials; ok is false while no App is configured.
func (p *Provider) Current(ctx context.Context) (Credentials, bool, error) {
	app, ok, err := p.App(ctx)
	return app.Credentials, ok, err
}

// AppKey returns the App's id and private key, or ErrNoApp while there is none; a
// github.Client asks it on every installation call, so it acts as a new App at once.
func (p *Provider) AppKey(ctx context.Context) (int64, []byte, error) {
	c, ok, err := p.Current(ctx)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, ErrNoApp
	}
	return c.AppID, c.PrivateKeyPEM, nil
}

// WebhookSecret returns the secret GitHub signs webhook deliveries with, or ErrNoApp.
func (p *Provider) WebhookSecret(ctx context.Context) ([]byte, error) {
	c, ok, err := p.Current(ctx)
	if err != nil {
		return nil, err
	}
	if !ok || c.WebhookSecret == "" {
		return nil, ErrNoApp
	}
	return []byte(c.WebhookSecret), nil
}

// App returns the App with its slug and page URL when known; ok is false while none is configured.
func (p *Provider) App(ctx context.Context) (App, bool, error) {
	if p.env.Configured() {
		return App{Credentials: p.env, Source: SourceEnvironment}, true, nil
	}
	p.mu.Lock()
	if p.cached != nil {
		app := *p.cached
		p.mu.Unlock()
		return app, true, nil
	}
	p.mu.Unlock()

	// Not cached: read the row. An absent row is not cached, so an App stored by another
	// server process is picked up on the next call.
	row, err := p.st.GitHubAppCredentials(ctx)
	if store.IsNotFound(err) {
		return App{}, false, nil
	}
	if err != nil {
		return App{}, false, fmt.Errorf("read GitHub App credentials: %w", err)
	}
	app, err := p.open(row)
	if err != nil {
		return App{}, false, err
	}
	p.remember(app)
	return app, true, nil
}

// Store seals and saves an App registered through /setup and starts using it at once. It refuses
// when an App is already configured (from the environment or an earlier /setup).
func (p *Provider) Store(ctx context.Context, app App) error {
	if p.env.Configured() {
		return fmt.Errorf("%w through the environment (STAGELY_GITHUB_APP_ID)", ErrAlreadyConfigured)
	}
	if err := validate(app.Credentials); err != nil {
		return fmt.Errorf("store GitHub App: %w", err)
	}
	plain, err := json.Marshal(sealedSecrets{
		PEM:           string(app.Credentials.PrivateKeyPEM),
		WebhookSecret: app.Credentials.WebhookSecret,
		ClientSecret:  app.Credentials.ClientSecret,
	})
	if err != nil {
		return fmt.Errorf("encode GitHub App credentials: %w", err)
	}
	defer clear(plain)
	sealed, err := p.keys.Seal(plain, seal.AppCredentialsAD(app.Credentials.AppID))
	if err != nil {
		return fmt.Errorf("seal GitHub App credentials: %w", err)
	}
	err = p.st.InTx(ctx, func(tx *store.Store) error {
		// The lock only serialises against an existing row; two first-time stores racing each
		// other leave the later one in place (both Apps exist on GitHub either way).
		if existing, err := tx.GitHubAppForUpdate(ctx); err == nil {
			return fmt.Errorf("%w (App id %d)", ErrAlreadyConfigured, existing.AppID)
		} else if !store.IsNotFound(err) {
			return err
		}
		return tx.PutGitHubApp(ctx, store.GitHubApp{
			AppID: app.Credentials.AppID, Slug: app.Slug, ClientID: app.Credentials.ClientID, HTMLURL: app.HTMLURL,
			CredentialsEncrypted: sealed.Ciphertext, CredentialsNonce: sealed.Nonce, CredentialsKeyID: sealed.KeyID,
		})
	})
	if err != nil {
		return fmt.Errorf("store GitHub App: %w", err)
	}
	app.Source = SourceSetup
	p.remember(app)
	return nil
}

// remember caches app.
func (p *Provider) remember(app App) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cached = &app
}

// open unseals a stored row.
func (p *Provider) open(row store.GitHubApp) (App, error) {
	plain, err := p.keys.Open(seal.Sealed{
		Ciphertext: row.CredentialsEncrypted, Nonce: row.CredentialsNonce, KeyID: row.CredentialsKeyID,
	}, seal.AppCredentialsAD(row.AppID))
	if err != nil {
		return App{}, fmt.Errorf("open stored GitHub App credentials (App id %d): %w", row.AppID, err)
	}
	defer clear(plain)
	var sec sealedSecrets
	if err := json.Unmarshal(plain, &sec); err != nil {
		return App{}, fmt.Errorf("decode stored GitHub App credentials (App id %d): %w", row.AppID, err)
	}
	return App{
		Credentials: Credentials{
			AppID: row.AppID, PrivateKeyPEM: []byte(sec.PEM), WebhookSecret: sec.WebhookSecret,
			ClientID: row.ClientID, ClientSecret: sec.ClientSecret,
		},
		Slug: row.Slug, HTMLURL: row.HTMLURL, Source: SourceSetup,
	}, nil
}

// validate checks that GitHub handed us a usable App before anything is stored.
func validate(c Credentials) error {
	switch {
	case c.AppID <= 0:
		return errors.New("App id is missing")
	case c.WebhookSecret == "":
		return errors.New("webhook secret is missing")
	case c.ClientID == "" || c.ClientSecret == "":
		return errors.New("OAuth client id or secret is missing")
	}
	if err := CheckPrivateKey(c.PrivateKeyPEM); err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	return nil
}

// CheckPrivateKey accepts the PKCS#1 RSA key GitHub hands out, and PKCS#8 RSA keys.
func CheckPrivateKey(b []byte) error {
	block, _ := pem.Decode(b)
	if block == nil {
		return errors.New("not PEM: paste the whole .pem file GitHub gave you, BEGIN and END lines included")
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return nil
		}
	}
	return errors.New("not an RSA key: generate a new private key in the App's settings")
}
