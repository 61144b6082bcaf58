package githubsim_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-github/v60/github"

	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/githubsim"
)

// fixture is a started Sim with one installation on "acme" holding two repositories with content.
type fixture struct {
	sim   *githubsim.Sim
	clock *clocktest.Clock
	ep    githubsim.Endpoints
	inst  int64
	sha1  string // first commit of acme/web on main
	sha2  string // second commit of acme/web on main
}

const (
	repoWeb   = "acme/web"
	repoOther = "acme/other"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := clocktest.New()
	sim := githubsim.New(githubsim.Options{Now: clk.Now, PrivateKey: testKey(t)})
	ep := sim.Start()
	t.Cleanup(sim.Close)
	inst := sim.AddInstallation("acme")
	for _, r := range []string{repoWeb, repoOther} {
		if err := sim.CreateRepo(inst, r, "main"); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(repo string, files map[string][]byte, msg string) string {
		sha, err := sim.Commit(context.Background(), repo, "main", files, msg)
		if err != nil {
			t.Fatal(err)
		}
		return sha
	}
	sha1 := commit(repoWeb, map[string][]byte{
		"stagely.yaml":       []byte("compose_file: compose.yaml\n"),
		"compose.yaml":       []byte("services:\n  web:\n    image: nginx\n"),
		"app/static/a.txt":   []byte("first"),
		"app/static/b/c.txt": []byte("deep"),
	}, "Initial commit")
	sha2 := commit(repoWeb, map[string][]byte{
		"stagely.yaml":       []byte("compose_file: compose.yaml\n"),
		"compose.yaml":       []byte("services:\n  web:\n    image: nginx:1.27\n"),
		"app/static/b/c.txt": []byte("deep"),
	}, "Pin nginx")
	commit(repoOther, map[string][]byte{"README.md": []byte("other")}, "init")
	return &fixture{sim: sim, clock: clk, ep: ep, inst: inst, sha1: sha1, sha2: sha2}
}

// testKeys caches one RSA key per test binary: generating 2048-bit keys under -race is slow.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	var keys []*rsa.PrivateKey
	for range 2 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	return keys
})

func testKey(t *testing.T) *rsa.PrivateKey  { t.Helper(); return testKeys()[0] }
func otherKey(t *testing.T) *rsa.PrivateKey { t.Helper(); return testKeys()[1] }

func parseKey(t *testing.T, b []byte) *rsa.PrivateKey {
	t.Helper()
	k, err := jwt.ParseRSAPrivateKeyFromPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// appJWT signs an App JWT the way GitHub's docs describe (iat 60 s back, exp ahead).
func appJWT(t *testing.T, key *rsa.PrivateKey, iss any, iat, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "iat": iat.Unix(), "exp": exp.Unix()})
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) jwt(t *testing.T) string {
	t.Helper()
	now := f.clock.Now()
	return appJWT(t, parseKey(t, f.sim.PrivateKeyPEM()), strconv.FormatInt(f.sim.AppID(), 10), now.Add(-60*time.Second), now.Add(9*time.Minute))
}

// installationToken mints a token through the API, optionally narrowed.
func (f *fixture) installationToken(t *testing.T, body any) string {
	t.Helper()
	resp, b := f.do(t, http.MethodPost, "app/installations/"+strconv.FormatInt(f.inst, 10)+"/access_tokens", "Bearer "+f.jwt(t), body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d %s", resp.StatusCode, b)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Token
}

// do sends one request to the API with an Authorization header and a JSON body.
func (f *fixture) do(t *testing.T, method, path, auth string, body any) (*http.Response, []byte) {
	t.Helper()
	return doHTTP(t, http.DefaultClient, method, f.ep.API+path, auth, body)
}

func doHTTP(t *testing.T, client *http.Client, method, u, auth string, body any) (*http.Response, []byte) {
	t.Helper()
	req := newJSONRequest(t, method, u, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return send(t, client, req)
}

func newJSONRequest(t *testing.T, method, u string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func postForm(t *testing.T, u string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, noRedirect(), req)
}

func send(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// ghClient is go-github v60 pointed at the Sim with a token and any transport.
func ghClient(t *testing.T, api string, rt http.RoundTripper, token string) *github.Client {
	t.Helper()
	c := github.NewClient(&http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }})
	if token != "" {
		c = c.WithAuthToken(token)
	}
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func hostOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

func ptr[T any](v T) *T { return &v }
