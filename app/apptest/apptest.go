// Package apptest assembles what the server's package tests stand on: a started githubsim, a
// PostgreSQL database of the test's own, a secret key, a log the test reads, and app/github
// clients pointed at the Sim. A package's own helper adds only the part it tests.
package apptest

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// Env is one server's surroundings in a test; everything in it ends with the test.
type Env struct {
	// Sim is the started simulated GitHub; Endpoints are its base URLs.
	Sim       *githubsim.Sim
	Endpoints githubsim.Endpoints
	// DatabaseURL is the test's own migrated database, and Store is open on it.
	DatabaseURL string
	Store       *store.Store
	// Key is the raw secret key (STAGELY_SECRET_KEY before base64), and Keys seals with it.
	Key  []byte
	Keys *seal.Keyring
	// Logs holds what the clients of the Env log; hand Logs.Logger() to the code under test.
	Logs *logtest.Buffer
}

// New builds an Env; sim configures the Sim (its zero value is a working App).
func New(t testing.TB, sim githubsim.Options) *Env {
	t.Helper()
	e := &Env{Sim: githubsim.New(sim), DatabaseURL: storetest.NewDatabase(t), Key: Key(t), Logs: &logtest.Buffer{}}
	e.Endpoints = e.Sim.Start()
	t.Cleanup(e.Sim.Close)
	e.Store = storetest.Open(t, e.DatabaseURL)
	e.Keys = Keyring(t, e.Key)
	return e
}

// Credentials are the Sim's App as the environment variables give it to appcreds.
func (e *Env) Credentials() appcreds.Credentials {
	return appcreds.Credentials{
		AppID: e.Sim.AppID(), PrivateKeyPEM: e.Sim.PrivateKeyPEM(), WebhookSecret: e.Sim.WebhookSecret(),
		ClientID: e.Sim.ClientID(), ClientSecret: e.Sim.ClientSecret(),
	}
}

// Secrets is the secrets service on the Env's store and key.
func (e *Env) Secrets() *secrets.Service { return secrets.New(e.Store, e.Keys) }

// GitHubClient is the server's github.Client on the Sim, logging into Logs; opts add the rest
// (AppKey, HTTPClient, ...), and the URLs and logger it sets are the Env's.
func (e *Env) GitHubClient(t testing.TB, opts github.Options) *github.Client {
	t.Helper()
	opts.APIURL, opts.WebURL, opts.Logger = e.Endpoints.API, e.Endpoints.Web, e.Logs.Logger()
	c, err := github.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// App is the Sim's App as app/github acts as it; opts add the rest (MaxRetries, Logger, ...).
func (e *Env) App(t testing.TB, opts github.Options) *github.App {
	t.Helper()
	opts.AppID, opts.PrivateKeyPEM, opts.APIURL = e.Sim.AppID(), e.Sim.PrivateKeyPEM(), e.Endpoints.API
	a, err := github.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Key returns a random secret key.
func Key(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// Keyring returns a keyring sealing with cur (a fresh random key when cur is nil) that also
// opens what the prev keys sealed.
func Keyring(t testing.TB, cur []byte, prev ...[]byte) *seal.Keyring {
	t.Helper()
	if cur == nil {
		cur = Key(t)
	}
	keys, err := seal.NewKeyring(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// MintToken makes an agent token at bcrypt's lowest cost. Verify reads the cost from the
// hash, so the token is checked with the real bcrypt all the same, without the second of
// race-detector CPU a hash at agenttoken.Cost takes; only tests of the cost itself need Mint.
func MintToken(t testing.TB, agentID int64) agenttoken.Minted {
	t.Helper()
	m, err := agenttoken.MintCost(agentID, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// NewAgent creates an agent of the user in st, with a token from MintToken, and returns the
// row and the token.
func NewAgent(t testing.TB, st *store.Store, userID int64, name string) (store.Agent, string) {
	t.Helper()
	var token string
	a, err := st.CreateAgent(t.Context(), userID, name, func(id int64) (string, error) {
		m, err := agenttoken.MintCost(id, bcrypt.MinCost)
		token = m.Token
		return m.Hash, err
	})
	if err != nil {
		t.Fatalf("create agent %s: %v", name, err)
	}
	return a, token
}
