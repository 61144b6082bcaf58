package github_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/githubsim"
)

const (
	repoWeb   = "acme/web"
	repoOther = "acme/other"
)

// fixture is a githubsim behind a fault injector, with one installation on "acme" holding two
// repositories, and an App client pointed at it.
type fixture struct {
	sim    *githubsim.Sim
	faults *injector
	inst   int64
	sha1   string // first commit of acme/web
	sha2   string // second commit of acme/web, the head of main
	app    *github.App
	logs   *logtest.Buffer
	sleeps *sleepRecorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, func(*github.Options) {})
}

func newFixtureWith(t *testing.T, tweak func(*github.Options)) *fixture {
	t.Helper()
	sim := githubsim.New(githubsim.Options{})
	inj := &injector{next: sim.Handler()}
	srv := httptest.NewServer(inj)
	t.Cleanup(srv.Close)
	sim.SetBaseURLs(srv.URL, srv.URL)

	f := &fixture{sim: sim, faults: inj, logs: &logtest.Buffer{}, sleeps: &sleepRecorder{}}
	f.inst = sim.AddInstallation("acme")
	for _, r := range []string{repoWeb, repoOther} {
		if err := sim.CreateRepo(f.inst, r, "main"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var err error
	f.sha1, err = sim.Commit(ctx, repoWeb, "main", map[string][]byte{
		"stagely.yaml":            []byte("version: \"1.0\"\n"),
		"compose.yaml":            []byte("services:\n  web:\n    image: nginx\n"),
		"deploy/compose.prod.yml": []byte("services: {}\n"),
	}, "First")
	if err != nil {
		t.Fatal(err)
	}
	f.sha2, err = sim.Commit(ctx, repoWeb, "main", map[string][]byte{
		"stagely.yaml": []byte("version: \"1.0\"\ncompose_file: compose.yaml\n"),
		"compose.yaml": []byte("services:\n  web:\n    image: nginx:2\n"),
	}, "Second")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Commit(ctx, repoOther, "main", map[string][]byte{"README.md": []byte("other\n")}, "Other"); err != nil {
		t.Fatal(err)
	}
	opts := github.Options{
		AppID:         sim.AppID(),
		PrivateKeyPEM: sim.PrivateKeyPEM(),
		APIURL:        srv.URL + "/",
		HTTPClient:    srv.Client(),
		Logger:        slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:         f.sleeps.Sleep,
	}
	tweak(&opts)
	f.app, err = github.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) installation() *github.Installation { return f.app.Installation(f.inst) }

// checkRun creates the check run run on repoWeb and returns its id.
func (f *fixture) checkRun(t *testing.T, run github.NewCheckRun) int64 {
	t.Helper()
	id, err := f.installation().CreateCheckRun(context.Background(), repoWeb, run)
	if err != nil {
		t.Fatalf("create check run %s: %v", run.Name, err)
	}
	return id
}

// injector answers matching requests with a canned failure a set number of times and passes
// everything else to the Sim; it remembers every request it saw, body included.
type injector struct {
	next http.Handler

	mu     sync.Mutex
	faults []*fault
	seen   []seenRequest
}

type fault struct {
	method, pattern string // pattern is path.Match syntax
	times           int
	status          int
	header          http.Header
	body            string
}

type seenRequest struct {
	Method, Path string
	Body         []byte
}

// fail makes the next `times` requests matching method and pattern answer status, header and
// body; status 0 closes the connection instead.
func (in *injector) fail(method, pattern string, times, status int, header http.Header, body string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = append(in.faults, &fault{method: method, pattern: pattern, times: times, status: status, header: header, body: body})
}

func (in *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	in.mu.Lock()
	in.seen = append(in.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Body: body})
	var hit *fault
	for _, f := range in.faults {
		if ok, _ := path.Match(f.pattern, r.URL.Path); ok && f.method == r.Method && f.times > 0 {
			f.times--
			hit = f
			break
		}
	}
	in.mu.Unlock()
	if hit == nil {
		in.next.ServeHTTP(w, r)
		return
	}
	if hit.status == 0 {
		// Status 0 hangs up without an answer: a network error for the client.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, vs := range hit.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(hit.status)
	_, _ = io.WriteString(w, hit.body)
}

// requests returns what the injector saw for method and pattern.
func (in *injector) requests(method, pattern string) []seenRequest {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []seenRequest
	for _, s := range in.seen {
		if ok, _ := path.Match(pattern, s.Path); ok && s.Method == method {
			out = append(out, s)
		}
	}
	return out
}

// sleepRecorder stands in for time.Sleep: it records the waits asked for and returns at once.
type sleepRecorder struct {
	waited recordtest.List[time.Duration]
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.waited.Add(d)
	return ctx.Err()
}

// wantRequests fails t unless GitHub was sent want requests matching method and pattern
// (path.Match syntax), however they were answered.
func (f *fixture) wantRequests(t *testing.T, method, pattern string, want int) {
	t.Helper()
	if n := len(f.faults.requests(method, pattern)); n != want {
		t.Errorf("%d requests to %s %s, want %d", n, method, pattern, want)
	}
}
