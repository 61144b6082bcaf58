package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/lib/pq"
)

// Redelivery is a redelivery of a webhook event that the recovery loop asked GitHub for.
type Redelivery struct {
	// GUID is the event's X-GitHub-Delivery, shared by every attempt at it.
	GUID  string `db:"guid"`
	Event string `db:"event"`
	// GitHubAttemptID and FirstAttemptAt are GitHub's id and time of the earliest attempt seen.
	GitHubAttemptID int64     `db:"github_attempt_id"`
	FirstAttemptAt  time.Time `db:"first_attempt_at"`
	// Requests counts the redeliveries asked for; RequestedAt is when the last one was.
	Requests    int       `db:"requests"`
	RequestedAt time.Time `db:"requested_at"`
}

// ClaimRedelivery records that r.GUID is about to be asked for at r.RequestedAt, unless it was
// last asked for at or after retryBefore, or maxRequests times already: claimed is false then.
// Of several servers claiming one GUID at once, one wins. The earliest attempt known is kept.
func (s *Store) ClaimRedelivery(ctx context.Context, r Redelivery, retryBefore time.Time, maxRequests int) (claimed bool, err error) {
	var guid string
	err = s.q.GetContext(ctx, &guid, `
		INSERT INTO webhook_redeliveries (guid, event, github_attempt_id, first_attempt_at, requests, requested_at)
		VALUES ($1, $2, $3, $4, 1, $5)
		ON CONFLICT (guid) DO UPDATE SET
			requests = webhook_redeliveries.requests + 1,
			requested_at = EXCLUDED.requested_at,
			github_attempt_id = LEAST(webhook_redeliveries.github_attempt_id, EXCLUDED.github_attempt_id),
			first_attempt_at = LEAST(webhook_redeliveries.first_attempt_at, EXCLUDED.first_attempt_at)
		WHERE webhook_redeliveries.requested_at < $6 AND webhook_redeliveries.requests < $7
		RETURNING guid`, r.GUID, r.Event, r.GitHubAttemptID, r.FirstAttemptAt, r.RequestedAt, retryBefore, maxRequests)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return false, mapErr(err)
}

// RedeliveryByGUID returns what was asked for an event.
func (s *Store) RedeliveryByGUID(ctx context.Context, guid string) (Redelivery, error) {
	return getAs[Redelivery](ctx, s, "webhook redelivery", guid, `SELECT * FROM webhook_redeliveries WHERE guid = $1`, guid)
}

// RecordedDeliveries says which of guids webhook_deliveries holds.
func (s *Store) RecordedDeliveries(ctx context.Context, guids []string) (map[string]bool, error) {
	found, err := selectAs[string](ctx, s, `
		SELECT delivery_id FROM webhook_deliveries WHERE delivery_id = ANY($1)`, pq.Array(guids))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(found))
	for _, g := range found {
		out[g] = true
	}
	return out, nil
}

// PruneRedeliveries forgets the redeliveries last asked for before before, and says how many.
func (s *Store) PruneRedeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.q.ExecContext(ctx, `DELETE FROM webhook_redeliveries WHERE requested_at < $1`, before)
	if err != nil {
		return 0, mapErr(err)
	}
	return res.RowsAffected()
}
