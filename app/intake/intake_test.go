package intake_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/installations"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
	"github.com/stagely/stagely/webhook"
	"github.com/stagely/stagely/webhook/webhooktest"
)

// offlineHub has no agent connected: deployments wait.
type offlineHub struct{}

func (offlineHub) Dispatch(context.Context, int64, protocol.Deploy) error {
	return fmt.Errorf("offline")
}
func (offlineHub) Cancel(int64, string) error { return fmt.Errorf("offline") }
func (offlineHub) Idle(int64) bool            { return false }

type pipeline struct {
	st      *store.Store
	handler http.Handler
	worker  *intake.Worker
	secret  []byte
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	k := apptest.New(t, githubsim.Options{})
	st, app := k.Store, k.App(t, github.Options{MaxRetries: -1})
	orch := deploy.New(deploy.Options{Store: st, Hub: offlineHub{}, Secrets: k.Secrets(), PublicURL: "http://stagely.test",
		GitHub: func(id int64) deploy.GitHub { return app.Installation(id) }})
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Poll: 50 * time.Millisecond, Handlers: []intake.EventHandler{
		intake.On(deploy.NewPushHandler(orch).Handle), intake.On(deploy.NewPullRequestHandler(orch).Handle),
		intake.On(deploy.NewCheckRunHandler(orch).Handle), intake.On(deploy.NewCheckSuiteHandler(orch).Handle),
		intake.On(installations.NewHandler(st, nil).Handle), intake.On(installations.NewRepositoriesHandler(st).Handle),
	}})
	secret := []byte("conformance-secret")
	h := intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, w.Poke, discard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &pipeline{st: st, handler: h, worker: w, secret: secret}
}

func (p *pipeline) deliver(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	p.handler.ServeHTTP(rec, r)
	return rec
}

func (p *pipeline) decided(t *testing.T, deliveryID string) store.Delivery {
	t.Helper()
	return waitForDelivery(t, p.st, deliveryID, "delivery "+deliveryID+" to be decided", func(d store.Delivery) bool {
		return d.Status == store.DeliveryDone || d.Status == store.DeliveryFailed
	})
}

func TestIntake_EveryPublishedPayloadIsAcceptedAndDecided(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	payloads := webhooktest.Payloads(t)
	if len(payloads) < 82 {
		t.Fatalf("found %d published payloads, want all 82", len(payloads))
	}
	ids := make([]string, len(payloads))
	for i, pl := range payloads {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rec := p.deliver(t, webhooktest.Request(pl.Event, ids[i], p.secret, pl.Body))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("%s/%s: %d %s", pl.Event, pl.Name, rec.Code, rec.Body)
		}
	}
	var got strings.Builder
	for i, pl := range payloads {
		d := p.decided(t, ids[i])
		if d.Status != store.DeliveryDone || d.Decision == "" {
			t.Errorf("%s/%s: status %s, decision %q", pl.Event, pl.Name, d.Status, d.Decision)
		}
		if pl.Event == "push" && !strings.HasPrefix(d.Decision, "ignored: ") {
			t.Errorf("%s/%s deployed without a project: %q", pl.Event, pl.Name, d.Decision)
		}
		fmt.Fprintf(&got, "%s/%s: %s\n", pl.Event, pl.Name, d.Decision)
	}
	// The decisions are pinned, so moving a handler cannot change what a delivery decides.
	golden := filepath.Join("testdata", "decisions.golden")
	want, err := os.ReadFile(golden)
	if err != nil || string(want) != got.String() {
		_ = os.WriteFile(golden+".actual", []byte(got.String()), 0o644)
		t.Fatalf("decisions differ from %s (%v); actual written to %s.actual", golden, err, golden)
	}
}

func TestIntake_RejectsWithoutRecording(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		body   []byte
		want   int
	}{
		{"bad signature", func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64)) }, body, http.StatusUnauthorized},
		{"missing signature", func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") }, body, http.StatusUnauthorized},
		{"sha1 only", func(r *http.Request) {
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Set("X-Hub-Signature", "sha1=0000000000000000000000000000000000000000")
		}, body, http.StatusUnauthorized},
		{"missing event", func(r *http.Request) { r.Header.Del("X-GitHub-Event") }, body, http.StatusBadRequest},
		{"missing delivery id", func(r *http.Request) { r.Header.Del("X-GitHub-Delivery") }, body, http.StatusBadRequest},
		{"not a POST", func(r *http.Request) { r.Method = http.MethodGet }, body, http.StatusMethodNotAllowed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := webhooktest.Request("ping", fmt.Sprintf("11111111-0000-4000-8000-%012d", i), p.secret, tt.body)
			tt.mutate(r)
			if rec := p.deliver(t, r); rec.Code != tt.want {
				t.Fatalf("answered %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
	var n int
	if err := p.st.DB().QueryRow(`SELECT count(*) FROM webhook_deliveries`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d refused deliveries were recorded (err %v)", n, err)
	}
}

func TestIntake_RedeliveryIsAcknowledgedNotRerun(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	body := []byte(`{"zen":"Design for failure.","hook_id":7}`)
	id := "22222222-0000-4000-8000-000000000001"
	if rec := p.deliver(t, webhooktest.Request("ping", id, p.secret, body)); rec.Code != http.StatusAccepted {
		t.Fatalf("first delivery: %d", rec.Code)
	}
	first := p.decided(t, id)
	rec := p.deliver(t, webhooktest.Request("ping", id, p.secret, body))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "duplicate of an earlier delivery") {
		t.Fatalf("redelivery: %d %s", rec.Code, rec.Body)
	}
	again, _ := p.st.DeliveryByDeliveryID(context.Background(), id)
	if again.Attempts != first.Attempts || again.ProcessedAt != first.ProcessedAt {
		t.Fatalf("the redelivery was processed again: %+v then %+v", first, again)
	}
}

func TestIntake_DeliveryRecordedBeforeACrashIsProcessedOnRestart(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t)
	body := []byte(`{"zen":"Anything added dilutes everything else.","hook_id":9}`)
	secret := []byte("s")
	// A handler whose worker never runs: the process "crashes" right after answering.
	h := intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, discard(), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, webhooktest.Request("ping", "33333333-0000-4000-8000-000000000001", secret, body))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("answered %d", rec.Code)
	}
	// The "restarted" server's worker finds it in the database.
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Handlers: nil, Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	d := waitForDelivery(t, st, "33333333-0000-4000-8000-000000000001", "the recorded delivery to be processed after the restart",
		func(d store.Delivery) bool { return d.Status == store.DeliveryDone })
	if !strings.HasPrefix(d.Decision, "pong: ") {
		t.Fatalf("decision %q", d.Decision)
	}
}

// flakyHandlers fails the first pushes it sees, then decides.
type flakyHandlers struct {
	mu       sync.Mutex
	failures int
	calls    int
}

func (f *flakyHandlers) Handle(context.Context, int64, webhook.Push) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return "", errors.New("database restarting")
	}
	return "ignored: test", nil
}

// TestWorker_ProcessingErrorIsRetriedAfterABackOff fails a delivery twice. The worker's clock
// stands still unless the test moves it, and only ever by seconds, so no lease (minutes) can
// run out while an attempt runs, however slow the machine: each attempt is claimed once.
func TestWorker_ProcessingErrorIsRetriedAfterABackOff(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t)
	var push []byte
	for _, p := range webhooktest.Payloads(t) {
		if p.Event == "push" && p.Name == "with-new-branch.payload.json" {
			push = p.Body
		}
	}
	const id = "44444444-0000-4000-8000-000000000001"
	secret := []byte("s")
	rec := httptest.NewRecorder()
	intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, discard(), nil).
		ServeHTTP(rec, webhooktest.Request("push", id, secret, push))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("answered %d", rec.Code)
	}
	clock := clocktest.New()
	h := &flakyHandlers{failures: 2}
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Handlers: []intake.EventHandler{intake.On(h.Handle)}, Poll: 20 * time.Millisecond, Now: clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for attempt, backOff := range []time.Duration{5 * time.Second, 10 * time.Second} {
		// The failed attempt leaves the delivery claimed until now + its back-off, and the
		// stopped clock keeps it there: the test decides when the back-off has passed.
		waitForDelivery(t, st, id, fmt.Sprintf("attempt %d to fail and back off %s", attempt+1, backOff), func(d store.Delivery) bool {
			return d.Status == store.DeliveryProcessing && d.Attempts == attempt+1 &&
				d.LockedUntil.Valid && d.LockedUntil.Time.Equal(clock.Now().Add(backOff))
		})
		clock.Advance(backOff + time.Second)
		w.Poke()
	}
	d := waitForDelivery(t, st, id, "the third attempt to decide", func(d store.Delivery) bool { return d.Status == store.DeliveryDone })
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if d.Attempts != 3 || calls != 3 || d.Decision != "ignored: test" {
		t.Fatalf("done after %d attempts (%d calls) with %q, want 3 attempts", d.Attempts, calls, d.Decision)
	}
}

// waitForDelivery polls the delivery until ok, for up to 20 seconds.
func waitForDelivery(t *testing.T, st *store.Store, id, what string, ok func(store.Delivery) bool) store.Delivery {
	t.Helper()
	var d store.Delivery
	waittest.UntilSays(t, 20*time.Second, what, func() (bool, string) {
		var err error
		d, err = st.DeliveryByDeliveryID(context.Background(), id)
		return err == nil && ok(d), fmt.Sprintf("%+v %v", d, err)
	})
	return d
}

// orderedHandlers records the pushes it is given and holds the one to block until released.
type orderedHandlers struct {
	block   string
	started chan struct{}
	release chan struct{}
	seen    recordtest.List[string]
}

func (o *orderedHandlers) Handle(_ context.Context, _ int64, ev webhook.Push) (string, error) {
	name := ev.HeadCommit.Message
	if name == o.block {
		close(o.started)
		<-o.release
	}
	o.seen.Add(name)
	return "ignored: " + name, nil
}

func TestWorker_KeepsOneRepositorysDeliveriesInOrderAndOthersInParallel(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t)
	secret := []byte("s")
	h := intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, discard(), nil)
	pushes := []struct{ id, name, repo string }{
		{"55555555-0000-4000-8000-000000000001", "first to acme/a", `{"id":1,"full_name":"acme/a"}`},
		{"55555555-0000-4000-8000-000000000002", "second to acme/a", `{"id":1,"full_name":"acme/a"}`},
		{"55555555-0000-4000-8000-000000000003", "only to acme/b", `{"id":2,"full_name":"acme/b"}`},
	}
	for _, p := range pushes {
		body := fmt.Sprintf(`{"ref":"refs/heads/main","after":"%040d","head_commit":{"id":"%040d","message":%q},"repository":%s,"installation":{"id":9}}`, 1, 1, p.name, p.repo)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, webhooktest.Request("push", p.id, secret, []byte(body)))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("%s: answered %d %s", p.name, rec.Code, rec.Body)
		}
	}
	handlers := &orderedHandlers{block: "first to acme/a", started: make(chan struct{}), release: make(chan struct{})}
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Handlers: []intake.EventHandler{intake.On(handlers.Handle)}, Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	select {
	case <-handlers.started:
	case <-time.After(20 * time.Second):
		t.Fatal("acme/a's first push was not handled within 20s")
	}
	// acme/b does not wait for acme/a's first push; acme/a's second push does.
	waitForDelivery(t, st, pushes[2].id, "acme/b's push to be decided while acme/a's first is held",
		func(d store.Delivery) bool { return d.Status == store.DeliveryDone })
	if got := handlers.seen.All(); len(got) != 1 || got[0] != "only to acme/b" {
		t.Fatalf("while acme/a's first push was held, decided %q", got)
	}
	close(handlers.release)
	waitForDelivery(t, st, pushes[1].id, "acme/a's second push to be decided",
		func(d store.Delivery) bool { return d.Status == store.DeliveryDone })
	if got := handlers.seen.All(); strings.Join(got, ", ") != "only to acme/b, first to acme/a, second to acme/a" {
		t.Fatalf("decided in the order %q", got)
	}
}

func TestOn_HandlesOneEventTypeAndRefusesAnother(t *testing.T) {
	t.Parallel()
	h := intake.On(func(_ context.Context, id int64, ev webhook.CheckSuite) (string, error) {
		return fmt.Sprintf("suite %d of delivery %d", ev.ID, id), nil
	})
	if h.Handles() != webhook.EventCheckSuite {
		t.Fatalf("Handles() = %q", h.Handles())
	}
	if got, err := h.Handle(context.Background(), 7, webhook.CheckSuite{ID: 3}); err != nil || got != "suite 3 of delivery 7" {
		t.Fatalf("a check_suite: %q, %v", got, err)
	}
	if _, err := h.Handle(context.Background(), 7, webhook.Ping{}); err == nil || !strings.Contains(err.Error(), "given a ping event") {
		t.Fatalf("a ping: %v", err)
	}
}

func TestNewWorker_TwoHandlersForOneEventAreAWiringMistake(t *testing.T) {
	t.Parallel()
	push := func(context.Context, int64, webhook.Push) (string, error) { return "", nil }
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "two handlers for push") {
			t.Fatalf("recovered %v, want a panic naming push", r)
		}
	}()
	intake.NewWorker(intake.WorkerOptions{Handlers: []intake.EventHandler{intake.On(push), intake.On(push)}})
}
