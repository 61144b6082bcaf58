package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// AuditEntry is one line of the audit trail: who did what to which thing.
type AuditEntry struct {
	ID         int64           `db:"id"`
	UserID     sql.NullInt64   `db:"user_id"`
	Actor      string          `db:"actor"`
	Action     string          `db:"action"`
	TargetType string          `db:"target_type"`
	TargetID   string          `db:"target_id"`
	Detail     json.RawMessage `db:"detail"`
	CreatedAt  time.Time       `db:"created_at"`
}

// AddAudit appends an entry. Detail must never hold a secret value or a token.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) error {
	if len(e.Detail) == 0 {
		e.Detail = json.RawMessage("{}")
	}
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO audit_log (user_id, actor, action, target_type, target_id, detail)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.UserID, e.Actor, e.Action, e.TargetType, e.TargetID, []byte(e.Detail))
	return mapErr(err)
}

// AuditByUser lists a user's newest entries first.
func (s *Store) AuditByUser(ctx context.Context, userID int64, limit int) ([]AuditEntry, error) {
	return selectAs[AuditEntry](ctx, s, `
		SELECT * FROM audit_log WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, userID, limit)
}

// AuditForTarget lists the newest entries about one thing of a user (an agent's history:
// created, token rotated, bootstrap token replayed, duplicate connection refused).
func (s *Store) AuditForTarget(ctx context.Context, userID int64, targetType, targetID string, limit int) ([]AuditEntry, error) {
	return selectAs[AuditEntry](ctx, s, `
		SELECT * FROM audit_log WHERE user_id = $1 AND target_type = $2 AND target_id = $3
		ORDER BY created_at DESC, id DESC LIMIT $4`, userID, targetType, targetID, limit)
}
