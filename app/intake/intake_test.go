package intake_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/installations"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
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
	st := storetest.NewStore(t)
	sim := githubsim.New(githubsim.Options{})
	ep := sim.Start()
	t.Cleanup(sim.Close)
	app, err := github.New(github.Options{AppID: sim.AppID(), PrivateKeyPEM: sim.PrivateKeyPEM(), APIURL: ep.API, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, _ := seal.NewKeyring(key)
	orch := deploy.New(deploy.Options{Store: st, Hub: offlineHub{}, Secrets: secrets.New(st, keys), PublicURL: "http://stagely.test",
		GitHub: func(id int64) deploy.GitHub { return app.Installation(id) }})
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Poll: 50 * time.Millisecond, Handlers: []intake.EventHandler{
		deploy.NewPushHandler(orch), deploy.NewPullRequestHandler(orch), deploy.NewCheckRunHandler(orch), deploy.NewCheckSuiteHandler(orch),
		installations.NewHandler(st, nil), installations.NewRepositoriesHandler(st),
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := p.st.DeliveryByDeliveryID(context.Background(), deliveryID)
		if err == nil && (d.Status == store.DeliveryDone || d.Status == store.DeliveryFailed) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s not processed: %+v, %v", deliveryID, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := st.DeliveryByDeliveryID(context.Background(), "33333333-0000-4000-8000-000000000001")
		if err == nil && d.Status == store.DeliveryDone {
			if !strings.HasPrefix(d.Decision, "pong: ") {
				t.Fatalf("decision %q", d.Decision)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorded delivery was not processed after the restart: %+v %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flakyHandlers fails the first pushes it sees, then decides.
type flakyHandlers struct {
	mu       sync.Mutex
	failures int
}

func (f *flakyHandlers) Handles() string { return webhook.EventPush }

func (f *flakyHandlers) Handle(context.Context, int64, webhook.Event) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return "", errors.New("database restarting")
	}
	return "ignored: test", nil
}

func TestWorker_ProcessingErrorIsRetriedAfterABackOff(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t)
	body := webhooktest.Payloads(t)
	var push []byte
	for _, p := range body {
		if p.Event == "push" && p.Name == "with-new-branch.payload.json" {
			push = p.Body
		}
	}
	secret := []byte("s")
	rec := httptest.NewRecorder()
	intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, discard(), nil).
		ServeHTTP(rec, webhooktest.Request("push", "44444444-0000-4000-8000-000000000001", secret, push))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("answered %d", rec.Code)
	}
	// Each look at the clock is a minute later, so back-offs pass at once.
	var ticks atomic.Int64
	base := time.Now()
	w := intake.NewWorker(intake.WorkerOptions{Queue: st, Handlers: []intake.EventHandler{&flakyHandlers{failures: 2}}, Poll: 20 * time.Millisecond,
		Now: func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * time.Minute) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := st.DeliveryByDeliveryID(context.Background(), "44444444-0000-4000-8000-000000000001")
		if err == nil && d.Status == store.DeliveryDone {
			if d.Attempts != 3 || d.Decision != "ignored: test" {
				t.Fatalf("done after %d attempts with %q, want 3 attempts", d.Attempts, d.Decision)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not processed after two failures: %+v %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
