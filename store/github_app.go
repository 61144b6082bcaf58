package store

import (
	"context"
	"time"
)

// GitHubApp is the App's identity stored by the manifest flow; its secrets are sealed together.
type GitHubApp struct {
	ID                   int16     `db:"id"`
	AppID                int64     `db:"app_id"`
	Slug                 string    `db:"slug"`
	ClientID             string    `db:"client_id"`
	HTMLURL              string    `db:"html_url"`
	CredentialsEncrypted []byte    `db:"credentials_encrypted"`
	CredentialsNonce     []byte    `db:"credentials_nonce"`
	CredentialsKeyID     string    `db:"credentials_key_id"`
	CreatedAt            time.Time `db:"created_at"`
	UpdatedAt            time.Time `db:"updated_at"`
}

// PutGitHubApp stores (or replaces) the App credentials.
func (s *Store) PutGitHubApp(ctx context.Context, a GitHubApp) error {
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO github_app (id, app_id, slug, client_id, html_url, credentials_encrypted, credentials_nonce, credentials_key_id)
		VALUES (1, $1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE
		SET app_id = EXCLUDED.app_id, slug = EXCLUDED.slug, client_id = EXCLUDED.client_id,
		    html_url = EXCLUDED.html_url, credentials_encrypted = EXCLUDED.credentials_encrypted,
		    credentials_nonce = EXCLUDED.credentials_nonce, credentials_key_id = EXCLUDED.credentials_key_id,
		    updated_at = now()`,
		a.AppID, a.Slug, a.ClientID, a.HTMLURL, a.CredentialsEncrypted, a.CredentialsNonce, a.CredentialsKeyID)
	return mapErr(err)
}

// GitHubAppCredentials returns the stored App, or a not-found error before /setup has run.
func (s *Store) GitHubAppCredentials(ctx context.Context) (GitHubApp, error) {
	return getAs[GitHubApp](ctx, s, "GitHub App", "credentials", `SELECT * FROM github_app WHERE id = 1`)
}

// GitHubAppForUpdate is GitHubAppCredentials with the row locked; call it inside InTx.
func (s *Store) GitHubAppForUpdate(ctx context.Context) (GitHubApp, error) {
	return getAs[GitHubApp](ctx, s, "GitHub App", "credentials", `SELECT * FROM github_app WHERE id = 1 FOR UPDATE`)
}
