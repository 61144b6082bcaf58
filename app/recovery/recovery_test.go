package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/recovery"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
)

const repo = "acme/web"

// fixture is githubsim sending webhooks to Stagely's real intake handler on a real
// PostgreSQL, behind a switch that makes the receiver answer 503 as a server whose database
// is down does; and a recovery loop reading githubsim's delivery log.
type fixture struct {
	sim  *githubsim.Sim
	st   *store.Store
	gh   *github.Client
	down atomic.Bool
	ctx  context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{sim: githubsim.New(githubsim.Options{}), st: storetest.NewStore(t), ctx: context.Background()}
	ep := f.sim.Start()
	t.Cleanup(f.sim.Close)
	if err := f.sim.CreateRepo(f.sim.AddInstallation("acme"), repo, "main"); err != nil {
		t.Fatal(err)
	}
	secret := func(context.Context) ([]byte, error) { return []byte(f.sim.WebhookSecret()), nil }
	h := intake.NewHandler(f.st, secret, func() {}, slog.New(slog.DiscardHandler), nil)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(recv.Close)
	f.sim.SetWebhookURL(recv.URL)
	var err error
	f.gh, err = github.NewClient(github.Options{
		APIURL: ep.API, WebURL: ep.Web,
		AppKey: func(context.Context) (int64, []byte, error) { return f.sim.AppID(), f.sim.PrivateKeyPEM(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// pushes commits n times to main while the receiver is down, and returns the deliveries' GUIDs
// oldest first.
func (f *fixture) missedPushes(t *testing.T, n int) []string {
	t.Helper()
	f.down.Store(true)
	var guids []string
	for i := range n {
		if _, err := f.sim.Commit(f.ctx, repo, "main", map[string][]byte{"n": {byte('0' + i)}}, "missed"); err != nil {
			t.Fatal(err)
		}
		ds := f.sim.Deliveries()
		if d := ds[len(ds)-1]; d.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("a push during the outage was answered %d", d.StatusCode)
		}
		guids = append(guids, ds[len(ds)-1].ID)
	}
	return guids
}

func (f *fixture) loop(now func() time.Time) *recovery.Loop {
	return recovery.New(recovery.Options{GitHub: f.gh, Store: f.st, Now: now})
}

// waitRecorded polls until PostgreSQL holds every one of guids.
func (f *fixture) waitRecorded(t *testing.T, guids []string) {
	t.Helper()
	waittest.UntilSays(t, 30*time.Second, "every missed delivery recorded", func() (bool, string) {
		got, err := f.st.RecordedDeliveries(f.ctx, guids)
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == len(guids), fmt.Sprintf("%d of %d recorded", len(got), len(guids))
	})
}

func TestLoop_EveryMissedEventIsAskedForOnceNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	live, err := f.sim.Commit(f.ctx, repo, "main", map[string][]byte{"a": []byte("live")}, "received")
	if err != nil {
		t.Fatalf("a push before the outage: %v (%s)", err, live)
	}
	missed := f.missedPushes(t, 4)
	// The last one was recorded, then the server died before answering: it is not missed.
	if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: missed[3], Event: "push", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	missed = missed[:3]
	f.down.Store(false)

	l := f.loop(nil)
	pass, err := l.Once(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pass.Missed != 3 || pass.Asked != 3 || !pass.Complete || pass.Examined != 5 {
		t.Fatalf("first pass %+v, want 3 of 5 attempts missed and asked for", pass)
	}
	f.waitRecorded(t, missed)

	// GitHub got the requests newest first, so the newest push reaches Stagely first. It logs
	// an attempt once the answer is in, which may be just after Stagely recorded it.
	var order []string
	deadline := time.Now().Add(30 * time.Second)
	for len(order) < 3 && time.Now().Before(deadline) {
		order = order[:0]
		for _, d := range f.sim.Deliveries() {
			if d.Redelivery {
				order = append(order, d.ID)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []string{missed[2], missed[1], missed[0]}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("redelivered %v, want newest first %v", order, want)
	}
	for i, g := range missed {
		r, err := f.st.RedeliveryByGUID(f.ctx, g)
		if err != nil || r.Requests != 1 || r.Event != "push" || r.GitHubAttemptID == 0 {
			t.Fatalf("redelivery %d kept as %+v, %v", i, r, err)
		}
	}

	// Once recovered, nothing is missed: a later pass, or another server's, asks for nothing.
	for _, again := range []*recovery.Loop{l, f.loop(nil)} {
		if pass, err := again.Once(f.ctx); err != nil || pass.Missed != 0 || pass.Asked != 0 {
			t.Fatalf("pass after recovery %+v, %v; want nothing missed", pass, err)
		}
	}
	if n := len(f.sim.CallsMatching("POST", "/app/hook/deliveries/*/attempts")); n != 3 {
		t.Fatalf("%d redeliveries asked for, want 3", n)
	}
}

func TestLoop_AnEventStillFailingIsAskedForAgainAfterAWhileThreeTimesAtMost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	missed := f.missedPushes(t, 1)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	// Passes a minute apart: an event is asked for again three intervals after the last time.
	l := recovery.New(recovery.Options{GitHub: f.gh, Store: f.st, Interval: time.Minute, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	attempts := func() int {
		n := 0
		for _, d := range f.sim.Deliveries() {
			if d.ID == missed[0] {
				n++
			}
		}
		return n
	}

	var asked []int
	for i := range 12 {
		pass, err := l.Once(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pass.Missed != 1 {
			t.Fatalf("pass %d: %+v, want the event missed still", i, pass)
		}
		if pass.Asked == 1 {
			asked = append(asked, i)
			// The redelivery fails too (the receiver is still down); wait for GitHub to log it.
			waittest.Until(t, 30*time.Second, fmt.Sprintf("redelivery %d to be attempted", len(asked)),
				func() bool { return attempts() == 1+len(asked) })
		}
		now.Add(int64(time.Minute))
	}
	if len(asked) != 3 || asked[0] != 0 || asked[1] != 4 || asked[2] != 8 {
		t.Fatalf("asked at passes %v of 12, want 0, 4 and 8: after more than 3 minutes, three times at most", asked)
	}
	if r, err := f.st.RedeliveryByGUID(f.ctx, missed[0]); err != nil || r.Requests != 3 {
		t.Fatalf("kept %+v, %v", r, err)
	}
}

func TestLoop_WithoutAnAppThereIsNothingToRecover(t *testing.T) {
	t.Parallel()
	gh, err := github.NewClient(github.Options{
		APIURL: "http://127.0.0.1:1/", WebURL: "http://127.0.0.1:1",
		AppKey: func(context.Context) (int64, []byte, error) { return 0, nil, appcreds.ErrNoApp },
	})
	if err != nil {
		t.Fatal(err)
	}
	l := recovery.New(recovery.Options{GitHub: gh, Store: storetest.NewStore(t)})
	if _, err := l.Once(context.Background()); !errors.Is(err, appcreds.ErrNoApp) {
		t.Fatalf("a pass without an App: %v, want ErrNoApp", err)
	}
}

func TestLoop_RunStopsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	missed := f.missedPushes(t, 2)
	f.down.Store(false)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		done <- recovery.New(recovery.Options{GitHub: f.gh, Store: f.st, Interval: time.Hour}).Run(ctx)
	}()
	// The pass at start recovers what was missed without waiting for the first tick.
	f.waitRecorded(t, missed)
	cancel()
	waittest.Returned(t, done, 30*time.Second, "Run")
}
