package store

import (
	"context"
	"database/sql"
	"time"
)

// Installation is one installation of the GitHub App on an account.
type Installation struct {
	ID           int64        `db:"id"`
	GitHubID     int64        `db:"github_id"`
	AccountLogin string       `db:"account_login"`
	AccountID    int64        `db:"account_id"`
	AccountType  string       `db:"account_type"`
	SuspendedAt  sql.NullTime `db:"suspended_at"`
	DeletedAt    sql.NullTime `db:"deleted_at"`
	CreatedAt    time.Time    `db:"created_at"`
	UpdatedAt    time.Time    `db:"updated_at"`
}

// Active reports whether the installation may deploy: neither suspended nor deleted.
func (i Installation) Active() bool { return !i.SuspendedAt.Valid && !i.DeletedAt.Valid }

// UpsertInstallation records an installation (created, or seen again) and clears a deletion mark.
func (s *Store) UpsertInstallation(ctx context.Context, in Installation) (Installation, error) {
	return getAs[Installation](ctx, s, "installation", in.GitHubID, `
		INSERT INTO github_installations (github_id, account_login, account_id, account_type, suspended_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (github_id) DO UPDATE
		SET account_login = EXCLUDED.account_login, account_id = EXCLUDED.account_id,
		    account_type = EXCLUDED.account_type, suspended_at = EXCLUDED.suspended_at,
		    deleted_at = NULL, updated_at = now()
		RETURNING *`, in.GitHubID, in.AccountLogin, in.AccountID, in.AccountType, in.SuspendedAt)
}

// InstallationByGitHubID returns the installation with GitHub's installation id.
func (s *Store) InstallationByGitHubID(ctx context.Context, githubID int64) (Installation, error) {
	return getAs[Installation](ctx, s, "installation", githubID, `SELECT * FROM github_installations WHERE github_id = $1`, githubID)
}

// InstallationByID returns the installation with our row id.
func (s *Store) InstallationByID(ctx context.Context, id int64) (Installation, error) {
	return getAs[Installation](ctx, s, "installation", id, `SELECT * FROM github_installations WHERE id = $1`, id)
}

// SetInstallationSuspended marks the installation suspended (at != nil) or active again.
func (s *Store) SetInstallationSuspended(ctx context.Context, githubID int64, at *time.Time) error {
	return s.execOne(ctx, "installation", githubID, `
		UPDATE github_installations SET suspended_at = $2, updated_at = now() WHERE github_id = $1`, githubID, at)
}

// MarkInstallationDeleted keeps the row (projects point at it) but stops it deploying.
func (s *Store) MarkInstallationDeleted(ctx context.Context, githubID int64, at time.Time) error {
	return s.execOne(ctx, "installation", githubID, `
		UPDATE github_installations SET deleted_at = $2, updated_at = now() WHERE github_id = $1`, githubID, at)
}
