package github_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/githubsim"
)

func TestNew_RejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	good := githubsim.New(githubsim.Options{}).PrivateKeyPEM()
	tests := []struct {
		name string
		opts github.Options
		want string
	}{
		{"empty key", github.Options{AppID: 1}, "private key: empty"},
		{"not PEM", github.Options{AppID: 1, PrivateKeyPEM: []byte("ghp_notakey")}, "no PEM block"},
		{"certificate instead of key", github.Options{AppID: 1, PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, `"CERTIFICATE"`},
		{"corrupt PKCS#1", github.Options{AppID: 1, PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2}})}, "parse PKCS#1"},
		{"EC key", github.Options{AppID: 1, PrivateKeyPEM: ecPEM}, "need an RSA key"},
		{"no app id", github.Options{PrivateKeyPEM: good}, "app id"},
		{"relative API URL", github.Options{AppID: 1, PrivateKeyPEM: good, APIURL: "api.github.com"}, "absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := github.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestInstallation_OneClientPerInstallation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, again := f.app.Installation(f.inst), f.app.Installation(f.inst)
	if first != again {
		t.Fatal("Installation() built a second client for the same installation")
	}
	if f.app.Installation(f.inst) == f.app.Installation(f.inst+1) {
		t.Fatal("two installations share a client")
	}
}

func TestReadFile_MintsOneInstallationTokenWithTheAppJWT(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for range 3 {
		if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
			t.Fatal(err)
		}
	}
	mints := f.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens")
	if len(mints) != 1 || mints[0].Status != http.StatusCreated || mints[0].Credential != githubsim.CredentialJWT {
		t.Fatalf("token mints = %+v, want one 201 made with the App JWT", mints)
	}
	reads := f.sim.CallsMatching(http.MethodGet, "/repos/acme/web/contents/*")
	if len(reads) != 3 {
		t.Fatalf("%d contents calls, want 3", len(reads))
	}
	for _, c := range reads {
		if c.Credential != githubsim.CredentialInstallation || c.Status != http.StatusOK {
			t.Fatalf("contents call %+v: want 200 with the installation token", c)
		}
	}
}

func TestReadFile_ReturnsTheContentAtTheGivenSHA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name, path, ref, want string
	}{
		{"old sha, not the branch head", "stagely.yaml", f.sha1, "version: \"1.0\"\n"},
		{"head sha", "stagely.yaml", f.sha2, "version: \"1.0\"\ncompose_file: compose.yaml\n"},
		{"leading ./ as in compose_file", "./compose.yaml", f.sha1, "services:\n  web:\n    image: nginx\n"},
		{"nested path", "deploy/compose.prod.yml", f.sha1, "services: {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.installation().ReadFile(ctx, repoWeb, tt.path, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("ReadFile(%s@%s) = %q, want %q", tt.path, tt.ref[:7], got, tt.want)
			}
		})
	}
}

func TestReadFile_MissingIsErrNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name, repo, path, ref string
	}{
		{"file deleted in a later commit", repoWeb, "deploy/compose.prod.yml", f.sha2},
		{"never existed", repoWeb, "docker-compose.yml", f.sha1},
		{"unknown ref", repoWeb, "stagely.yaml", strings.Repeat("e", 40)},
		{"repository outside the installation", "someone/else", "stagely.yaml", f.sha1},
		{"a directory", repoWeb, "deploy", f.sha1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := f.installation().ReadFile(ctx, tt.repo, tt.path, tt.ref)
			if !errors.Is(err, github.ErrNotFound) {
				t.Fatalf("ReadFile error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestReadFile_RefusesPathsOutsideTheRepository(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, p := range []string{"../etc/passwd", "deploy/../../x", "", "/"} {
		if _, err := f.installation().ReadFile(context.Background(), repoWeb, p, f.sha1); err == nil {
			t.Errorf("ReadFile(%q) succeeded, want an error", p)
		}
	}
	f.wantRequests(t, http.MethodGet, "/repos/*/*/contents/*", 0)
}

func TestReadFile_FileLargerThanOneMegabyte(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 3<<16) // ~3.3 MB, where JSON would carry no content
	sha, err := f.sim.Commit(context.Background(), repoWeb, "main", map[string][]byte{"compose.yaml": big}, "Big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.installation().ReadFile(context.Background(), repoWeb, "compose.yaml", sha)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("got %d bytes, want the %d committed", len(got), len(big))
	}
}

func TestRepoReadToken_ReachesOnlyThatRepositoryAndOnlyReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	webID := f.sim.RepoID(repoWeb)
	tok, err := f.installation().RepoReadToken(ctx, webID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value == "" || time.Until(tok.ExpiresAt) < 50*time.Minute {
		t.Fatalf("token %v: want a value and about an hour of life", tok)
	}
	mint := f.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens")
	last := mint[len(mint)-1]
	if last.Credential != githubsim.CredentialJWT || !bytes.Contains(last.Body, []byte(fmt.Sprintf(`"repository_ids":[%d]`, webID))) ||
		!bytes.Contains(last.Body, []byte(`"permissions":{"contents":"read"}`)) {
		t.Fatalf("mint request %s with %s: want repository_ids [%d] and contents:read with the JWT", last.Body, last.Credential, webID)
	}

	api := strings.TrimSuffix(f.sim.Endpoints().API, "/")
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"reads its repository", http.MethodGet, "/repos/acme/web/contents/stagely.yaml?ref=" + f.sha1, "", http.StatusOK},
		{"fetches its tarball", http.MethodGet, "/repos/acme/web/tarball/" + f.sha1, "", http.StatusFound},
		{"cannot see another repository", http.MethodGet, "/repos/acme/other/contents/README.md", "", http.StatusNotFound},
		{"cannot create a check run", http.MethodPost, "/repos/acme/web/check-runs", `{"name":"x","head_sha":"` + f.sha1 + `"}`, http.StatusForbidden},
		{"cannot post a status", http.MethodPost, "/repos/acme/web/statuses/" + f.sha1, `{"state":"success"}`, http.StatusForbidden},
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, api+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "token "+tok.Value)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s with the read token = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestRepoReadToken_UnknownRepositoryIsAnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.installation().RepoReadToken(context.Background(), 1)
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "not accessible") {
		t.Fatalf("RepoReadToken(unknown) error = %v, want GitHub's 422 message", err)
	}
}

func TestToken_NeverPrintsItsValue(t *testing.T) {
	t.Parallel()
	tok := github.Token{Value: "ghs_secretsecretsecret", ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("minted", "token", tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), logged.String()} {
		if strings.Contains(s, tok.Value) {
			t.Fatalf("token value leaked: %s", s)
		}
		if !strings.Contains(s, "2030-01-02T03:04:05Z") {
			t.Fatalf("redacted form %q lost the expiry", s)
		}
	}
}

func TestTarballURL_PointsAtTheAPITarballOfTheSHA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	got := f.installation().TarballURL(repoWeb, f.sha1)
	want := f.sim.Endpoints().API + "repos/acme/web/tarball/" + f.sha1
	if got != want {
		t.Fatalf("TarballURL = %q, want %q", got, want)
	}
}
