package store_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

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
	db, err := sql.Open("postgres", storetest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, err := migrations.FS()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
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
