package store

import (
	"context"
	"database/sql"
	"time"
)

// Delivery statuses.
const (
	DeliveryPending    = "pending"
	DeliveryProcessing = "processing"
	DeliveryDone       = "done"
	DeliveryFailed     = "failed"
)

// Delivery is one webhook delivery from GitHub, kept with its raw body until it is decided,
// and with its decision.
type Delivery struct {
	ID             int64         `db:"id"`
	DeliveryID     string        `db:"delivery_id"`
	Event          string        `db:"event"`
	Action         string        `db:"action"`
	InstallationID sql.NullInt64 `db:"installation_id"`
	// RepositoryID is the repository the delivery is about; NULL for events about none
	// (installation events) and for deliveries that had finished before the column existed.
	RepositoryID sql.NullInt64 `db:"repository_id"`
	// Payload is the raw body; nil once the delivery is done or failed.
	Payload     []byte       `db:"payload"`
	Status      string       `db:"status"`
	Decision    string       `db:"decision"`
	Attempts    int          `db:"attempts"`
	LockedUntil sql.NullTime `db:"locked_until"`
	ReceivedAt  time.Time    `db:"received_at"`
	ProcessedAt sql.NullTime `db:"processed_at"`
}

// NewDelivery is what the webhook endpoint records before answering GitHub.
type NewDelivery struct {
	DeliveryID     string
	Event          string
	Action         string
	InstallationID *int64
	// RepositoryID is nil for events about no single repository.
	RepositoryID *int64
	Payload      []byte
}

// RecordDelivery stores a delivery once. A redelivery of the same X-GitHub-Delivery id is
// not stored again: it returns the first record and created=false.
func (s *Store) RecordDelivery(ctx context.Context, d NewDelivery) (rec Delivery, created bool, err error) {
	err = s.q.GetContext(ctx, &rec, `
		INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, repository_id, payload)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (delivery_id) DO NOTHING
		RETURNING *`, d.DeliveryID, d.Event, d.Action, d.InstallationID, d.RepositoryID, d.Payload)
	if err == nil {
		return rec, true, nil
	}
	if err != sql.ErrNoRows {
		return Delivery{}, false, mapErr(err)
	}
	rec, err = s.DeliveryByDeliveryID(ctx, d.DeliveryID)
	return rec, false, err
}

// DeliveryByDeliveryID returns a delivery by GitHub's X-GitHub-Delivery id.
func (s *Store) DeliveryByDeliveryID(ctx context.Context, deliveryID string) (Delivery, error) {
	return getAs[Delivery](ctx, s, "webhook delivery", deliveryID, `SELECT * FROM webhook_deliveries WHERE delivery_id = $1`, deliveryID)
}

// ClaimDeliveries leases up to n deliveries for processing: pending ones, and ones whose
// previous lease ran out (a worker that crashed mid-way). Concurrent workers never get the
// same row.
func (s *Store) ClaimDeliveries(ctx context.Context, n int, lease time.Duration, now time.Time) ([]Delivery, error) {
	return selectAs[Delivery](ctx, s, `
		UPDATE webhook_deliveries SET status = 'processing', attempts = attempts + 1,
		       locked_until = $3::timestamptz + make_interval(secs => $2)
		WHERE id IN (
			SELECT id FROM webhook_deliveries
			WHERE status = 'pending' OR (status = 'processing' AND locked_until < $3)
			ORDER BY received_at, id
			FOR UPDATE SKIP LOCKED
			LIMIT $1)
		RETURNING *`, n, lease.Seconds(), now)
}

// FinishDelivery records the outcome and the one-line decision of a claimed delivery, and drops
// its raw body: nothing reads it after the decision, and it holds commit messages and file lists.
func (s *Store) FinishDelivery(ctx context.Context, id int64, status, decision string, at time.Time) error {
	return s.execOne(ctx, "webhook delivery", id, `
		UPDATE webhook_deliveries SET status = $2, decision = $3, processed_at = $4, locked_until = NULL, payload = NULL
		WHERE id = $1 AND status = 'processing'`, id, status, decision, at)
}

// DelayDelivery keeps a claimed delivery whose processing failed until until, when the next
// claim picks it up again.
func (s *Store) DelayDelivery(ctx context.Context, id int64, until time.Time) error {
	return s.execOne(ctx, "webhook delivery", id, `
		UPDATE webhook_deliveries SET locked_until = $2 WHERE id = $1 AND status = 'processing'`, id, until)
}

// RecentDeliveries lists the newest deliveries first.
func (s *Store) RecentDeliveries(ctx context.Context, limit int) ([]Delivery, error) {
	return selectAs[Delivery](ctx, s, `SELECT * FROM webhook_deliveries ORDER BY received_at DESC, id DESC LIMIT $1`, limit)
}

// PruneDeliveries deletes up to batch deliveries decided before cutoff and returns how many it
// deleted; deployments they started keep everything but the link. Deliveries not yet decided
// stay, however old.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	res, err := s.q.ExecContext(ctx, `
		DELETE FROM webhook_deliveries WHERE id IN (
			SELECT id FROM webhook_deliveries WHERE processed_at < $1 ORDER BY processed_at LIMIT $2)`, cutoff, batch)
	if err != nil {
		return 0, mapErr(err)
	}
	return res.RowsAffected()
}
