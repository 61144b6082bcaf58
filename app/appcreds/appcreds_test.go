package appcreds_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// pemKey is one RSA key for the whole test binary: generating keys is slow under -race.
var pemKey = sync.OnceValue(func() []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
})

func registered() appcreds.App {
	return appcreds.App{
		Credentials: appcreds.Credentials{
			AppID: 424242, PrivateKeyPEM: pemKey(), WebhookSecret: "whsec-0123456789abcdef",
			ClientID: "Iv1.abcdef0123456789", ClientSecret: "clientsecret-fedcba9876543210",
		},
		Slug: "stagely-acme", HTMLURL: "https://github.com/apps/stagely-acme",
	}
}

// storedApp is a database and a keyring holding registered(), as after /setup.
func storedApp(t *testing.T) (*store.Store, *seal.Keyring) {
	t.Helper()
	st, keys := storetest.NewStore(t), apptest.Keyring(t, nil)
	if err := appcreds.New(st, keys, appcreds.Credentials{}).Store(context.Background(), registered()); err != nil {
		t.Fatal(err)
	}
	return st, keys
}

func TestCurrent_NothingConfiguredIsNotAnError(t *testing.T) {
	t.Parallel()
	p := appcreds.New(storetest.NewStore(t), apptest.Keyring(t, nil), appcreds.Credentials{})
	creds, ok, err := p.Current(context.Background())
	if err != nil || ok || creds.AppID != 0 {
		t.Fatalf("Current = %v, %v, %v; want empty, false, nil", creds, ok, err)
	}
}

func TestCurrent_EnvironmentWinsOverStoredApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, keys := storedApp(t)
	env := appcreds.Credentials{AppID: 7, PrivateKeyPEM: pemKey(), WebhookSecret: "env-secret", ClientID: "Iv1.env", ClientSecret: "env-cs"}
	p := appcreds.New(st, keys, env)
	app, ok, err := p.App(ctx)
	if err != nil || !ok {
		t.Fatalf("App: ok=%v err=%v", ok, err)
	}
	if app.Credentials.AppID != 7 || app.Credentials.ClientID != "Iv1.env" || app.Source != appcreds.SourceEnvironment {
		t.Fatalf("App = %v from %s; want the environment's App 7", app.Credentials, app.Source)
	}
	if err := p.Store(ctx, registered()); !errors.Is(err, appcreds.ErrAlreadyConfigured) {
		t.Fatalf("Store with an environment App: err = %v, want ErrAlreadyConfigured", err)
	}
}

func TestStore_SealsSecretsAndCurrentReturnsThemAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, keys := storetest.NewStore(t), apptest.Keyring(t, nil)
	p := appcreds.New(st, keys, appcreds.Credentials{})
	if _, ok, _ := p.Current(ctx); ok {
		t.Fatal("an App before Store")
	}
	if _, _, err := p.AppKey(ctx); !errors.Is(err, appcreds.ErrNoApp) {
		t.Fatalf("AppKey before Store: err = %v, want ErrNoApp", err)
	}
	if _, err := p.WebhookSecret(ctx); !errors.Is(err, appcreds.ErrNoApp) {
		t.Fatalf("WebhookSecret before Store: err = %v, want ErrNoApp", err)
	}
	want := registered()
	if err := p.Store(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := p.App(ctx)
	if err != nil || !ok {
		t.Fatalf("App after Store: ok=%v err=%v", ok, err)
	}
	assertSameApp(t, got, want)
	if id, key, err := p.AppKey(ctx); err != nil || id != want.Credentials.AppID || !bytes.Equal(key, want.Credentials.PrivateKeyPEM) {
		t.Fatalf("AppKey after Store = %d, %d key bytes, %v; want the stored App's", id, len(key), err)
	}
	if secret, err := p.WebhookSecret(ctx); err != nil || string(secret) != want.Credentials.WebhookSecret {
		t.Fatalf("WebhookSecret after Store: err = %v, or not the stored App's", err)
	}

	// The row holds none of the secrets in the clear.
	var raw []byte
	if err := st.DB().QueryRowContext(ctx, `SELECT convert_to(t::text, 'UTF8') FROM github_app t`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemKey())
	for name, secret := range map[string][]byte{
		"private key PEM": pemKey(), "private key bytes": block.Bytes[:32],
		"webhook secret": []byte(want.Credentials.WebhookSecret), "client secret": []byte(want.Credentials.ClientSecret),
	} {
		if bytes.Contains(raw, secret) || strings.Contains(string(raw), hex.EncodeToString(secret)) {
			t.Errorf("the github_app row contains the %s", name)
		}
	}

	// Another process (a new Provider) opens the same row.
	again, ok, err := appcreds.New(st, keys, appcreds.Credentials{}).App(ctx)
	if err != nil || !ok {
		t.Fatalf("fresh provider: ok=%v err=%v", ok, err)
	}
	assertSameApp(t, again, want)
}

func TestStore_RefusesASecondApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, keys := storedApp(t)
	other := registered()
	other.Credentials.AppID = 99
	// A provider that never read the row still meets it in the transaction.
	if err := appcreds.New(st, keys, appcreds.Credentials{}).Store(ctx, other); !errors.Is(err, appcreds.ErrAlreadyConfigured) {
		t.Fatalf("second Store: err = %v, want ErrAlreadyConfigured", err)
	}
	got, _, _ := appcreds.New(st, keys, appcreds.Credentials{}).Current(ctx)
	if got.AppID != registered().Credentials.AppID {
		t.Fatalf("stored App id = %d, want the first App's", got.AppID)
	}
}

func TestStore_RefusesUnusableCredentials(t *testing.T) {
	t.Parallel()
	st, keys := storetest.NewStore(t), apptest.Keyring(t, nil)
	p := appcreds.New(st, keys, appcreds.Credentials{})
	tests := []struct {
		name   string
		change func(*appcreds.Credentials)
		want   string
	}{
		{"no app id", func(c *appcreds.Credentials) { c.AppID = 0 }, "App id is missing"},
		{"no webhook secret", func(c *appcreds.Credentials) { c.WebhookSecret = "" }, "webhook secret"},
		{"no client secret", func(c *appcreds.Credentials) { c.ClientSecret = "" }, "client id or secret"},
		{"key not PEM", func(c *appcreds.Credentials) { c.PrivateKeyPEM = []byte("hello") }, "not PEM"},
		{"key not RSA", func(c *appcreds.Credentials) {
			c.PrivateKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})
		}, "not an RSA key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := registered()
			tt.change(&app.Credentials)
			err := p.Store(context.Background(), app)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Store: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, ok, _ := p.Current(context.Background()); ok {
		t.Fatal("a refused App was stored")
	}
}

func TestCurrent_TamperedRowFailsToOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		update string
	}{
		{"ciphertext flipped", `UPDATE github_app SET credentials_encrypted = set_byte(credentials_encrypted, 0, get_byte(credentials_encrypted, 0) # 1)`},
		{"app id changed", `UPDATE github_app SET app_id = app_id + 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, keys := storedApp(t)
			if _, err := st.DB().ExecContext(ctx, tt.update); err != nil {
				t.Fatal(err)
			}
			_, ok, err := appcreds.New(st, keys, appcreds.Credentials{}).Current(ctx)
			if !errors.Is(err, seal.ErrOpen) || ok {
				t.Fatalf("Current: ok=%v err=%v; want seal.ErrOpen", ok, err)
			}
			if !strings.Contains(err.Error(), "open stored GitHub App credentials") {
				t.Fatalf("error %q does not say what failed to open", err)
			}
		})
	}
}

func TestCurrent_WrongMasterKeySaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	if err := appcreds.New(st, apptest.Keyring(t, nil), appcreds.Credentials{}).Store(ctx, registered()); err != nil {
		t.Fatal(err)
	}
	_, _, err := appcreds.New(st, apptest.Keyring(t, nil), appcreds.Credentials{}).Current(ctx)
	if !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("Current under another key: err = %v, want seal.ErrUnknownKey", err)
	}
}

func assertSameApp(t *testing.T, got, want appcreds.App) {
	t.Helper()
	g, w := got.Credentials, want.Credentials
	if g.AppID != w.AppID || !bytes.Equal(g.PrivateKeyPEM, w.PrivateKeyPEM) || g.WebhookSecret != w.WebhookSecret ||
		g.ClientID != w.ClientID || g.ClientSecret != w.ClientSecret {
		t.Fatalf("credentials = %v, want %v (secrets compared too)", g, w)
	}
	if got.Slug != want.Slug || got.HTMLURL != want.HTMLURL || got.Source != appcreds.SourceSetup {
		t.Fatalf("slug/url/source = %q %q %q", got.Slug, got.HTMLURL, got.Source)
	}
}
