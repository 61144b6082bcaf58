package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

func TestRedeliveries_ClaimedOnceAWhileAndAFewTimesAtMost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	r := store.Redelivery{GUID: "g-1", Event: "push", GitHubAttemptID: 50, FirstAttemptAt: t0.Add(-time.Hour), RequestedAt: t0}
	claim := func(at time.Time, attempt int64, firstAt time.Time) bool {
		t.Helper()
		r.RequestedAt, r.GitHubAttemptID, r.FirstAttemptAt = at, attempt, firstAt
		ok, err := f.st.ClaimRedelivery(f.ctx, r, at.Add(-15*time.Minute), 3)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim(t0, 50, t0.Add(-time.Hour)) {
		t.Fatal("the first claim of an event was refused")
	}
	if claim(t0.Add(5*time.Minute), 60, t0.Add(-time.Hour)) {
		t.Fatal("an event asked for 5 minutes ago was claimed again")
	}
	if !claim(t0.Add(20*time.Minute), 40, t0.Add(-2*time.Hour)) {
		t.Fatal("an event asked for 20 minutes ago was refused")
	}
	if !claim(t0.Add(40*time.Minute), 70, t0) {
		t.Fatal("the third claim was refused")
	}
	if claim(t0.Add(60*time.Minute), 70, t0) {
		t.Fatal("an event asked for three times was claimed a fourth time")
	}
	got, err := f.st.RedeliveryByGUID(f.ctx, "g-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 3 || !got.RequestedAt.Equal(t0.Add(40*time.Minute)) || got.GitHubAttemptID != 40 || !got.FirstAttemptAt.Equal(t0.Add(-2*time.Hour)) {
		t.Fatalf("kept %+v: want 3 requests, the last at +40m, and the earliest attempt (40, -2h)", got)
	}

	if n, err := f.st.PruneRedeliveries(f.ctx, t0.Add(30*time.Minute)); err != nil || n != 0 {
		t.Fatalf("pruned %d rows asked for after the cutoff: %v", n, err)
	}
	if n, err := f.st.PruneRedeliveries(f.ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the one row", n, err)
	}
	if _, err := f.st.RedeliveryByGUID(f.ctx, "g-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after pruning: %v", err)
	}
}

func TestRedeliveries_OfServersClaimingAtOnceOneWins(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := f.st.ClaimRedelivery(f.ctx, store.Redelivery{GUID: "g-race", Event: "push", GitHubAttemptID: 1, FirstAttemptAt: now, RequestedAt: now}, now.Add(-time.Minute), 3)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d servers claimed the same redelivery, want 1", wins.Load())
	}
}

func TestRecordedDeliveries_SaysWhichEventsReachedUs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"here-1", "here-2"} {
		if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: id, Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.st.RecordedDeliveries(f.ctx, []string{"here-1", "missing", "here-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["here-1"] || !got["here-2"] || got["missing"] {
		t.Fatalf("recorded: %v", got)
	}
	if got, err := f.st.RecordedDeliveries(f.ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no guids: %v %v", got, err)
	}
}

func TestNewerPushDeployment_OrdersPushesByWhenGitHubFirstSentThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 501, "main")
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	// push records a push delivery; recoveredAt, when set, makes it a redelivery whose first
	// attempt GitHub made then, with attempt id seq.
	push := func(guid string, recoveredAt time.Time, seq int64) int64 {
		t.Helper()
		if !recoveredAt.IsZero() {
			if _, err := f.st.ClaimRedelivery(f.ctx, store.Redelivery{GUID: guid, Event: "push", GitHubAttemptID: seq, FirstAttemptAt: recoveredAt, RequestedAt: time.Now()}, time.Now(), 3); err != nil {
				t.Fatal(err)
			}
		}
		d, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: guid, Event: "push", Payload: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	deploy := func(delivery int64, n int) store.Deployment {
		t.Helper()
		d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(n), Ref: "refs/heads/main", Trigger: store.TriggerPush, DeliveryID: &delivery})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	newer := func(delivery int64) (store.Deployment, bool) {
		t.Helper()
		d, err := f.st.NewerPushDeployment(f.ctx, p.ID, "refs/heads/main", delivery)
		if errors.Is(err, store.ErrNotFound) {
			return store.Deployment{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return d, true
	}

	// Three pushes missed in one second, recovered newest first: p3 is deployed, then p2 and p1
	// arrive and each finds p3 newer; p3 finds nothing newer.
	p3 := push("p3", t0, 103)
	d3 := deploy(p3, 3)
	p2 := push("p2", t0, 102)
	p1 := push("p1", t0.Add(-time.Second), 101)
	for _, older := range []int64{p2, p1} {
		if got, ok := newer(older); !ok || got.ID != d3.ID {
			t.Fatalf("push delivery %d: newer deployment %v (found %v), want #%d", older, got.ID, ok, d3.ID)
		}
	}
	if got, ok := newer(p3); ok {
		t.Fatalf("the newest push found #%d newer", got.ID)
	}
	// A push received live after the outage is newer than every recovered one.
	live := push("live", time.Time{}, 0)
	if _, ok := newer(live); ok {
		t.Fatal("a live push found a recovered one newer")
	}
	dLive := deploy(live, 4)
	if got, ok := newer(p3); !ok || got.ID != dLive.ID {
		t.Fatalf("the recovered push's newer deployment is %d (found %v), want the live push's #%d", got.ID, ok, dLive.ID)
	}
	// Another branch or project is not compared.
	other := f.newProject("api", 502, "main")
	if _, err := f.st.NewerPushDeployment(f.ctx, other.ID, "refs/heads/main", p1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another project: %v", err)
	}
	if _, err := f.st.NewerPushDeployment(f.ctx, p.ID, "refs/heads/dev", p1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another branch: %v", err)
	}

	sup, err := f.st.RecordSupersededPush(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(1), Ref: "refs/heads/main", Trigger: store.TriggerPush, DeliveryID: &p1}, d3.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sup.Status != store.DeploymentSuperseded || sup.SupersededBy.Int64 != d3.ID || !sup.FinishedAt.Valid {
		t.Fatalf("recorded %+v", sup)
	}
	if q, err := f.st.OldestQueued(f.ctx, p.ID, store.EnvironmentProduction); err == nil && q.ID == sup.ID {
		t.Fatal("a superseded push is queued")
	}
}
