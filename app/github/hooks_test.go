package github_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/waittest"
)

// failDeliveries points the Sim's webhooks at a receiver answering 503 and sends n pings.
func (f *fixture) failDeliveries(t *testing.T, n int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	f.sim.SetWebhookURL(srv.URL)
	for range n {
		if _, err := f.sim.SendPing(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHookDeliveriesSince_FollowsTheCursorAndStopsAtSince(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.failDeliveries(t, 130)
	ctx := context.Background()

	all, complete, err := f.app.HookDeliveriesSince(ctx, time.Time{})
	if err != nil || !complete {
		t.Fatalf("list: %v, complete %v", err, complete)
	}
	if len(all) != 130 {
		t.Fatalf("listed %d deliveries, want 130 over two pages", len(all))
	}
	for i, d := range all {
		if d.GUID == "" || d.Event != "ping" || d.StatusCode != 503 || d.Delivered() || d.Redelivery || d.DeliveredAt.IsZero() {
			t.Fatalf("delivery %d: %+v", i, d)
		}
		if i > 0 && d.ID >= all[i-1].ID {
			t.Fatalf("delivery %d (id %d) after id %d: want newest first", i, d.ID, all[i-1].ID)
		}
	}
	if calls := f.faults.requests(http.MethodGet, "/app/hook/deliveries"); len(calls) != 2 {
		t.Fatalf("%d list calls for 130 deliveries, want 2 pages of 100", len(calls))
	}

	recent, complete, err := f.app.HookDeliveriesSince(ctx, time.Now().Add(time.Hour))
	if err != nil || !complete || len(recent) != 0 {
		t.Fatalf("since an hour ahead: %d deliveries, complete %v, %v", len(recent), complete, err)
	}
	if calls := f.faults.requests(http.MethodGet, "/app/hook/deliveries"); len(calls) != 3 {
		t.Fatalf("a page reaching past since was followed: %d list calls, want 3", len(calls))
	}
}

func TestRedeliverHookDelivery_GitHubMakesANewAttemptWithTheSameGUID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.failDeliveries(t, 1)
	ctx := context.Background()
	ds, _, err := f.app.HookDeliveriesSince(ctx, time.Time{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("list: %v %v", ds, err)
	}
	if err := f.app.RedeliverHookDelivery(ctx, ds[0].ID); err != nil {
		t.Fatalf("redeliver: %v", err)
	}
	var again []github.HookDelivery
	waittest.Until(t, 20*time.Second, "a redelivery attempt after the 202", func() bool {
		again, _, err = f.app.HookDeliveriesSince(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return len(again) == 2
	})
	if again[0].GUID != ds[0].GUID || !again[0].Redelivery {
		t.Fatalf("redelivery listed as %+v", again[0])
	}
	if err := f.app.RedeliverHookDelivery(ctx, 424242); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("redeliver an unknown attempt: %v, want ErrNotFound", err)
	}
}

func TestHookDeliveries_WithoutAnAppNothingIsSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	noApp := errors.New("no GitHub App is configured")
	c := f.client(t, func(context.Context) (int64, []byte, error) { return 0, nil, noApp })
	if _, _, err := c.HookDeliveriesSince(context.Background(), time.Time{}); !errors.Is(err, noApp) {
		t.Fatalf("list without an App: %v", err)
	}
	if err := c.RedeliverHookDelivery(context.Background(), 1); !errors.Is(err, noApp) {
		t.Fatalf("redeliver without an App: %v", err)
	}
	if n := len(f.sim.CallsMatching("", "/app/hook/*")); n != 0 {
		t.Fatalf("%d calls reached GitHub", n)
	}
}
