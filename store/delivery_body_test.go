package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

// TestFinishDelivery_DropsTheBodyAndKeepsTheDecision: a raw body holds commit messages and file
// lists; once the delivery is decided nothing reads it again. Before, a finished delivery kept
// its body for ever.
func TestFinishDelivery_DropsTheBodyAndKeepsTheDecision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	repo, inst := int64(42), int64(7)
	for _, id := range []string{"done", "failed", "waiting"} {
		if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: id, Event: "push", Action: "", InstallationID: &inst, RepositoryID: &repo,
			Payload: []byte(`{"head_commit":{"message":"secret plans"}}`)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	claimed, err := f.st.ClaimDeliveries(f.ctx, 3, time.Minute, now)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	byID := map[string]int64{}
	for _, d := range claimed {
		byID[d.DeliveryID] = d.ID
	}
	if err := f.st.FinishDelivery(f.ctx, byID["done"], store.DeliveryDone, "deployed as #1", now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.FinishDelivery(f.ctx, byID["failed"], store.DeliveryFailed, "rejected: bad", now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DelayDelivery(f.ctx, byID["waiting"], now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]struct {
		body     bool
		decision string
	}{"done": {false, "deployed as #1"}, "failed": {false, "rejected: bad"}, "waiting": {true, ""}} {
		d, err := f.st.DeliveryByDeliveryID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if (d.Payload != nil) != want.body {
			t.Errorf("%s: body kept = %v (%d bytes), want %v", id, d.Payload != nil, len(d.Payload), want.body)
		}
		if d.Decision != want.decision || d.Event != "push" || d.RepositoryID.Int64 != repo || d.InstallationID.Int64 != inst {
			t.Errorf("%s: what the delivery was and its decision were not kept: %+v", id, d)
		}
	}
}

// TestMigration4_DropsTheBodiesOfDecidedDeliveriesAndKeepsWaitingOnes upgrades a database whose
// deliveries kept every body: the decided ones lose it, those still to be processed keep it, and
// a waiting delivery can no longer lose its body. Going back down makes the column required again.
func TestMigration4_DropsTheBodiesOfDecidedDeliveriesAndKeepsWaitingOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, p := migratedTo(t, 3)
	body := []byte(`{"head_commit":{"message":"secret plans"}}`)
	keeps := map[string]bool{"pending": true, "processing": true, "done": false, "failed": false}
	for status := range keeps {
		var processed any
		if !keeps[status] {
			processed = "now"
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO webhook_deliveries (delivery_id, event, payload, status, decision, processed_at)
			VALUES ($1, 'push', $2, $1, 'decided', $3::timestamptz)`, status, body, processed); err != nil {
			t.Fatalf("%s: %v", status, err)
		}
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatalf("migrate to version 4: %v", err)
	}
	for status, keep := range keeps {
		var got []byte
		var decision string
		if err := db.QueryRowContext(ctx, `SELECT payload, decision FROM webhook_deliveries WHERE delivery_id = $1`, status).Scan(&got, &decision); err != nil {
			t.Fatalf("%s: %v", status, err)
		}
		if (got != nil) != keep || decision != "decided" {
			t.Errorf("%s: body kept = %v, want %v; decision %q", status, got != nil, keep, decision)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE webhook_deliveries SET payload = NULL WHERE delivery_id = 'pending'`); err == nil {
		t.Error("a waiting delivery lost its body: the constraint did not hold")
	}
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("migrate down to version 3: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO webhook_deliveries (delivery_id, event, status) VALUES ('no body', 'push', 'done')`); err == nil {
		t.Error("after going down, a delivery without a body was accepted")
	}
}
