package intake_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
	"github.com/stagely/stagely/webhook/webhooktest"
)

// TestHandler_DatabaseDownIsAnswered503WithRetryAfter stops the test's own PostgreSQL: a signed
// delivery is then answered 503 with Retry-After, so GitHub records it as failed and it can be
// redelivered (by hand, or by the recovery of lost deliveries). Before, it was answered 500.
// Once the database is back, the same delivery is taken.
func TestHandler_DatabaseDownIsAnswered503WithRetryAfter(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t)
	st := cluster.NewStore(t)
	secret := []byte("s")
	h := intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, slog.New(slog.DiscardHandler), newMetrics(t))
	deliver := func(id string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, webhooktest.Request("ping", id, secret, []byte(`{"zen":"z","hook_id":1}`)))
		return rec
	}
	if rec := deliver("aaaaaaaa-0000-4000-8000-000000000001"); rec.Code != http.StatusAccepted {
		t.Fatalf("with the database up: %d %s", rec.Code, rec.Body)
	}

	cluster.Stop(t)
	const lost = "aaaaaaaa-0000-4000-8000-000000000002"
	rec := deliver(lost)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != intake.RetryAfter {
		t.Fatalf("with the database down: %d (Retry-After %q) %s, want 503 with Retry-After %s",
			rec.Code, rec.Header().Get("Retry-After"), rec.Body, intake.RetryAfter)
	}

	cluster.Start(t)
	// The pool finds its old connections broken; a redelivery is taken once it has new ones.
	waittest.UntilSays(t, 60*time.Second, "the redelivery accepted after the database came back", func() (bool, string) {
		rec := deliver(lost)
		return rec.Code == http.StatusAccepted, fmt.Sprintf("answered %d %s", rec.Code, rec.Body)
	})
	d, err := st.DeliveryByDeliveryID(context.Background(), lost)
	if err != nil || d.Event != "ping" {
		t.Fatalf("the redelivered delivery: %+v, %v", d, err)
	}
}
