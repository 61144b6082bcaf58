package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

func TestDeliveries_RecordedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := store.NewDelivery{DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Event: "push", Payload: []byte(`{"a":1}`)}
	first, created, err := f.st.RecordDelivery(f.ctx, d)
	if err != nil || !created {
		t.Fatalf("first record: created=%v, %v", created, err)
	}
	d.Payload = []byte(`{"a":2}`)
	again, created, err := f.st.RecordDelivery(f.ctx, d)
	if err != nil || created || again.ID != first.ID || string(again.Payload) != `{"a":1}` {
		t.Fatalf("redelivery: created=%v id %d/%d payload %s, %v", created, again.ID, first.ID, again.Payload, err)
	}
}

func TestDeliveries_ClaimLeasesAndRecoversAfterCrash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: id, Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	got, err := f.st.ClaimDeliveries(f.ctx, 2, time.Minute, now)
	if err != nil || len(got) != 2 || got[0].DeliveryID != "d1" || got[0].Attempts != 1 {
		t.Fatalf("first claim: %+v, %v", got, err)
	}
	rest, err := f.st.ClaimDeliveries(f.ctx, 10, time.Minute, now)
	if err != nil || len(rest) != 1 || rest[0].DeliveryID != "d3" {
		t.Fatalf("second claim took leased rows: %+v, %v", rest, err)
	}
	if err := f.st.FinishDelivery(f.ctx, got[0].ID, store.DeliveryDone, "deployed as #1", now); err != nil {
		t.Fatal(err)
	}
	// The worker holding d2 "crashed": after its lease runs out, d2 is claimed again.
	later, err := f.st.ClaimDeliveries(f.ctx, 10, time.Minute, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var reclaimed []string
	for _, d := range later {
		reclaimed = append(reclaimed, d.DeliveryID)
	}
	if len(later) != 2 || later[0].DeliveryID != "d2" || later[0].Attempts != 2 {
		t.Fatalf("after lease expiry claimed %v, want d2 (attempt 2) and d3", reclaimed)
	}
	done, _ := f.st.DeliveryByDeliveryID(f.ctx, "d1")
	if done.Status != store.DeliveryDone || done.Decision != "deployed as #1" || !done.ProcessedAt.Valid {
		t.Fatalf("finished delivery: %+v", done)
	}
}

func TestDeliveries_ConcurrentWorkersNeverShareARow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 40
	for i := 0; i < n; i++ {
		if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: sha(i), Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	// Every claim is made at one instant, so no lease can run out however long the claims take.
	now := time.Now()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := f.st.ClaimDeliveries(context.Background(), 3, time.Minute, now)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.DeliveryID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("delivery %s claimed %d times", id, c)
		}
	}
}

func TestDeliveries_KeepTheirInstallationAndRepository(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inst, repo := int64(7), int64(42)
	tests := []struct {
		name       string
		inst, repo *int64
	}{
		{"about a repository", &inst, &repo},
		{"about an installation only", &inst, nil},
		{"from a repository webhook", nil, &repo},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := sha(1000 + i)
			rec, created, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{
				DeliveryID: id, Event: "push", InstallationID: tt.inst, RepositoryID: tt.repo, Payload: []byte("{}"),
			})
			if err != nil || !created {
				t.Fatalf("record: created=%v, %v", created, err)
			}
			got, err := f.st.DeliveryByDeliveryID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []store.Delivery{rec, got} {
				if nullable(d.InstallationID) != deref(tt.inst) || nullable(d.RepositoryID) != deref(tt.repo) {
					t.Fatalf("installation %v repository %v, want %v and %v", d.InstallationID, d.RepositoryID, tt.inst, tt.repo)
				}
			}
		})
	}
}

// TestMigration3_GivesWaitingDeliveriesTheirRepository upgrades a database holding deliveries
// recorded before the repository_id column: those still to be processed get their repository
// from the payload, so the worker keeps them in order, and nothing stops the upgrade.
func TestMigration3_GivesWaitingDeliveriesTheirRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := migratedTo(t, 2)
	rows := []struct {
		id, status, payload string
		want                sql.NullInt64
	}{
		{"pending push", "pending", `{"ref":"refs/heads/main","repository":{"id":42,"full_name":"acme/site"}}`, sql.NullInt64{Int64: 42, Valid: true}},
		{"processing check run", "processing", `{"action":"rerequested","repository":{"id":43}}`, sql.NullInt64{Int64: 43, Valid: true}},
		{"pending installation", "pending", `{"action":"created","installation":{"id":7}}`, sql.NullInt64{}},
		{"pending, not JSON", "pending", "payload=%7B%7D", sql.NullInt64{}},
		{"pending, not UTF-8", "pending", "\xff\xfe", sql.NullInt64{}},
		{"pending, id not a number", "pending", `{"repository":{"id":"forty-two"}}`, sql.NullInt64{}},
		{"done push", "done", `{"repository":{"id":44}}`, sql.NullInt64{}},
	}
	for _, r := range rows {
		var processed any
		if r.status == "done" {
			processed = "now"
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO webhook_deliveries (delivery_id, event, payload, status, processed_at)
			VALUES ($1, 'push', $2, $3, $4::timestamptz)`, r.id, []byte(r.payload), r.status, processed); err != nil {
			t.Fatalf("%s: %v", r.id, err)
		}
	}
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	for _, r := range rows {
		var got sql.NullInt64
		if err := db.QueryRowContext(ctx, `SELECT repository_id FROM webhook_deliveries WHERE delivery_id = $1`, r.id).Scan(&got); err != nil {
			t.Fatalf("%s: %v", r.id, err)
		}
		if got != r.want {
			t.Errorf("%s: repository_id %v, want %v", r.id, got, r.want)
		}
	}
}

func nullable(n sql.NullInt64) int64 {
	if !n.Valid {
		return -1
	}
	return n.Int64
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// emptyDatabase is a database of the test's own with no schema, closed when the test ends.
// migratedTo is a database migrated to version, and the goose provider that migrates it further.
func migratedTo(t *testing.T, version int64) (*sql.DB, *goose.Provider) {
	t.Helper()
	db := emptyDatabase(t)
	fsys, err := migrations.FS()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatalf("migrate to version %d: %v", version, err)
	}
	return db, p
}

func emptyDatabase(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", storetest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
