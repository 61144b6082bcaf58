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
	"slices"
	"sync"

	"github.com/stagely/stagely/app/config"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// ErrAlreadyConfigured is returned by Store when the server already has an App.
var ErrAlreadyConfigured = errors.New("a GitHub App is already configured")

// Source says where the credentials came from.
type Source string

// The two places credentials come from.
const (
	SourceEnvironment Source = "environment"
	SourceSetup       Source = "setup"
)

// App is the GitHub App's identity and secrets with what GitHub told us about it.
type App struct {
	Credentials config.AppCredentials
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
	env  config.AppCredentials

	mu     sync.Mutex
	cached *App // nil until the row has been read and found
	subs   []func(config.AppCredentials)
}

// New builds a Provider. env is the configuration's App; when it names one, it always wins.
func New(st Store, keys *seal.Keyring, env config.AppCredentials) *Provider {
	return &Provider{st: st, keys: keys, env: env}
}

// sealedSecrets is the JSON document sealed into credentials_encrypted.
type sealedSecrets struct {
	PEM           string `json:"pem"`
	WebhookSecret string `json:"webhook_secret"`
	ClientSecret  string `json:"client_secret"`
}

// Current returns the App's credentials; ok is false while no App is configured.
func (p *Provider) Current(ctx context.Context) (config.AppCredentials, bool, error) {
	app, ok, err := p.App(ctx)
	return app.Credentials, ok, err
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

// Subscribe registers fn to be called with the new credentials whenever this Provider learns of
// an App it did not have (after Store, or when the row first appears). fn runs synchronously
// on the caller's goroutine, outside the Provider's lock; it must not block for long.
func (p *Provider) Subscribe(fn func(config.AppCredentials)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs = append(p.subs, fn)
}

// remember caches app and tells subscribers if it is news.
func (p *Provider) remember(app App) {
	p.mu.Lock()
	changed := p.cached == nil || p.cached.Credentials.AppID != app.Credentials.AppID
	p.cached = &app
	subs := slices.Clone(p.subs)
	p.mu.Unlock()
	if changed {
		for _, fn := range subs {
			fn(app.Credentials)
		}
	}
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
		Credentials: config.AppCredentials{
			AppID: row.AppID, PrivateKeyPEM: []byte(sec.PEM), WebhookSecret: sec.WebhookSecret,
			ClientID: row.ClientID, ClientSecret: sec.ClientSecret,
		},
		Slug: row.Slug, HTMLURL: row.HTMLURL, Source: SourceSetup,
	}, nil
}

// validate checks that GitHub handed us a usable App before anything is stored.
func validate(c config.AppCredentials) error {
	switch {
	case c.AppID <= 0:
		return errors.New("App id is missing")
	case c.WebhookSecret == "":
		return errors.New("webhook secret is missing")
	case c.ClientID == "" || c.ClientSecret == "":
		return errors.New("OAuth client id or secret is missing")
	}
	block, _ := pem.Decode(c.PrivateKeyPEM)
	if block == nil {
		return errors.New("private key is not PEM")
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return nil
		}
	}
	return errors.New("private key is not an RSA key")
}
