package store

import (
	"context"
	"database/sql"
	"time"
)

// Session is a signed-in browser. Only the sha256 of its cookie value is stored.
type Session struct {
	IDHash               []byte         `db:"id_hash"`
	UserID               int64          `db:"user_id"`
	GitHubTokenEncrypted []byte         `db:"github_token_encrypted"`
	GitHubTokenNonce     []byte         `db:"github_token_nonce"`
	GitHubTokenKeyID     sql.NullString `db:"github_token_key_id"`
	CreatedAt            time.Time      `db:"created_at"`
	ExpiresAt            time.Time      `db:"expires_at"`
	RevokedAt            sql.NullTime   `db:"revoked_at"`
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO sessions (id_hash, user_id, github_token_encrypted, github_token_nonce, github_token_key_id, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		sess.IDHash, sess.UserID, sess.GitHubTokenEncrypted, sess.GitHubTokenNonce, sess.GitHubTokenKeyID, sess.ExpiresAt)
	return mapErr(err)
}

// ActiveSession returns the session with that id hash if it is neither expired nor revoked at now.
func (s *Store) ActiveSession(ctx context.Context, idHash []byte, now time.Time) (Session, error) {
	return getAs[Session](ctx, s, "session", "(hidden)", `
		SELECT * FROM sessions WHERE id_hash = $1 AND revoked_at IS NULL AND expires_at > $2`, idHash, now)
}

// RevokeSession ends a session (sign-out).
func (s *Store) RevokeSession(ctx context.Context, idHash []byte, at time.Time) error {
	return s.execOne(ctx, "session", "(hidden)", `
		UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL`, idHash, at)
}

// DeleteExpiredSessions removes sessions that ended before cutoff; it returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.q.ExecContext(ctx, `
		DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1`, cutoff)
	if err != nil {
		return 0, mapErr(err)
	}
	return res.RowsAffected()
}

// SessionsNotUnderKey returns sessions whose GitHub token is sealed under another key, locked for update.
func (s *Store) SessionsNotUnderKey(ctx context.Context, keyID string) ([]Session, error) {
	return selectAs[Session](ctx, s, `
		SELECT * FROM sessions WHERE github_token_key_id IS NOT NULL AND github_token_key_id <> $1
		ORDER BY created_at FOR UPDATE`, keyID)
}

// ResealSessionToken replaces a session's sealed GitHub token.
func (s *Store) ResealSessionToken(ctx context.Context, idHash, ciphertext, nonce []byte, keyID string) error {
	return s.execOne(ctx, "session", "(hidden)", `
		UPDATE sessions SET github_token_encrypted = $2, github_token_nonce = $3, github_token_key_id = $4
		WHERE id_hash = $1`, idHash, ciphertext, nonce, keyID)
}
