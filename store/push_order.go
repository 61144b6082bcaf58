package store

import (
	"context"
	"time"
)

// A push is placed among the pushes to its branch by when GitHub first tried to send it: the
// time its delivery was received, or, for a push recovered through a redelivery, the time and id
// of GitHub's first attempt (webhook_redeliveries), so that an old push recovered late is not
// taken for a new one. GitHub's times are whole seconds; its attempt ids order the pushes of one
// second, and a push received live sorts after GitHub's attempts of the same instant.
const (
	pushSentAt = `COALESCE(r.first_attempt_at, d.received_at)`
	pushSeq    = `COALESCE(r.github_attempt_id, 9223372036854775807)`
)

// NewerPushDeployment returns the deployment of project's branch ref made for the latest push
// that GitHub sent after the push of delivery (a webhook_deliveries id), or ErrNotFound when no
// later push has been queued or deployed.
func (s *Store) NewerPushDeployment(ctx context.Context, projectID int64, ref string, delivery int64) (Deployment, error) {
	return getAs[Deployment](ctx, s, "newer push deployment of project", projectID, `
		WITH me AS (
			SELECT `+pushSentAt+` AS sent_at, `+pushSeq+` AS seq
			FROM webhook_deliveries d LEFT JOIN webhook_redeliveries r ON r.guid = d.delivery_id
			WHERE d.id = $3)
		SELECT dep.* FROM me, deployments dep
		JOIN webhook_deliveries d ON d.id = dep.delivery_id
		LEFT JOIN webhook_redeliveries r ON r.guid = d.delivery_id
		WHERE dep.project_id = $1 AND dep.ref = $2 AND dep.trigger = 'push' AND d.id <> $3
		  AND (`+pushSentAt+`, `+pushSeq+`) > (me.sent_at, me.seq)
		ORDER BY `+pushSentAt+` DESC, `+pushSeq+` DESC, dep.id DESC
		LIMIT 1`, projectID, ref, delivery)
}

// RecordSupersededPush records the deployment of a push that reached us after a later push to
// its branch had: it is created superseded by newer, finished at at, and never dispatched.
func (s *Store) RecordSupersededPush(ctx context.Context, d NewDeployment, newer int64, at time.Time) (Deployment, error) {
	return getAs[Deployment](ctx, s, "deployment of", d.SHA, `
		INSERT INTO deployments (project_id, sha, ref, trigger, delivery_id, created_at,
		                         status, superseded_by, finished_at, error)
		VALUES ($1, $2, $3, $4, $5, $6, 'superseded', $7, $6, 'superseded by a newer push that reached Stagely first')
		RETURNING *`, d.ProjectID, d.SHA, d.Ref, d.Trigger, d.DeliveryID, at, newer)
}
