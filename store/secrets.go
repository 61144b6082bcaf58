package store

import (
	"context"
	"time"
)

// The two secret sets of a project (migrations 00011): production is what every deploy of the
// deploy branch gets; preview is what pull request previews get.
const (
	EnvProduction = "production"
	EnvPreview    = "preview"
)

// Secret is a project secret as stored: the value only ever sealed.
type Secret struct {
	ID             int64     `db:"id"`
	ProjectID      int64     `db:"project_id"`
	Scope          string    `db:"scope"`
	Key            string    `db:"key"`
	ValueEncrypted []byte    `db:"value_encrypted"`
	Nonce          []byte    `db:"nonce"`
	KeyID          string    `db:"key_id"`
	CreatedAt      time.Time `db:"created_at"`
	UpdatedAt      time.Time `db:"updated_at"`
	// Environment is the set the secret belongs to: "production" or "preview" (empty means
	// production when writing).
	Environment string `db:"environment"`
	// ShareWithPreviews lets a production secret reach previews too.
	ShareWithPreviews bool `db:"share_with_previews"`
}

// SecretMeta is a secret without its value: what lists and APIs show.
type SecretMeta struct {
	ID        int64     `db:"id"`
	ProjectID int64     `db:"project_id"`
	Scope     string    `db:"scope"`
	Key       string    `db:"key"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
	// Environment is the set the secret belongs to: "production" or "preview".
	Environment string `db:"environment"`
	// ShareWithPreviews lets a production secret reach previews too.
	ShareWithPreviews bool `db:"share_with_previews"`
}

// SecretWrite is one secret to create or replace. Share nil keeps a replaced secret's
// share_with_previews as it was (false for a new one).
type SecretWrite struct {
	Secret
	Share *bool
}

const secretMetaColumns = `id, project_id, scope, key, created_at, updated_at, environment, share_with_previews`

func envOrProduction(env string) string {
	if env == "" {
		return EnvProduction
	}
	return env
}

// PutSecret creates or replaces the secret (project, environment, scope, key) with a sealed
// value; sec.ShareWithPreviews is stored as given.
func (s *Store) PutSecret(ctx context.Context, sec Secret) (SecretMeta, error) {
	share := sec.ShareWithPreviews
	return s.WriteSecret(ctx, SecretWrite{Secret: sec, Share: &share})
}

// WriteSecret creates or replaces one secret, keeping its share mark when w.Share is nil.
func (s *Store) WriteSecret(ctx context.Context, w SecretWrite) (SecretMeta, error) {
	return getAs[SecretMeta](ctx, s, "secret", w.Scope+"/"+w.Key, `
		INSERT INTO secrets (project_id, environment, scope, key, value_encrypted, nonce, key_id, share_with_previews)
		VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, false))
		ON CONFLICT (project_id, environment, scope, key) DO UPDATE
		SET value_encrypted = EXCLUDED.value_encrypted, nonce = EXCLUDED.nonce,
		    key_id = EXCLUDED.key_id, updated_at = now(),
		    share_with_previews = COALESCE($8, secrets.share_with_previews)
		RETURNING `+secretMetaColumns,
		w.ProjectID, envOrProduction(w.Environment), w.Scope, w.Key, w.ValueEncrypted, w.Nonce, w.KeyID, w.Share)
}

// WriteSecrets creates or replaces many secrets in one transaction: all are stored or none.
func (s *Store) WriteSecrets(ctx context.Context, ws []SecretWrite) ([]SecretMeta, error) {
	out := make([]SecretMeta, 0, len(ws))
	err := s.InTx(ctx, func(tx *Store) error {
		out = out[:0]
		for _, w := range ws {
			m, err := tx.WriteSecret(ctx, w)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetSecretSharing marks or unmarks a production secret for previews, leaving its value alone.
func (s *Store) SetSecretSharing(ctx context.Context, projectID int64, scope, key string, share bool) (SecretMeta, error) {
	return getAs[SecretMeta](ctx, s, "secret", scope+"/"+key, `
		UPDATE secrets SET share_with_previews = $4, updated_at = now()
		WHERE project_id = $1 AND environment = 'production' AND scope = $2 AND key = $3
		RETURNING `+secretMetaColumns, projectID, scope, key, share)
}

// SecretMetas lists a project's secrets of both sets without values, by environment
// (production first), scope, then key.
func (s *Store) SecretMetas(ctx context.Context, projectID int64) ([]SecretMeta, error) {
	return selectAs[SecretMeta](ctx, s, `
		SELECT `+secretMetaColumns+` FROM secrets
		WHERE project_id = $1 ORDER BY environment = 'preview', scope, key`, projectID)
}

// SealedSecrets returns a project's production secrets with their sealed values, for building
// a production DEPLOY. Preview secrets never appear here.
func (s *Store) SealedSecrets(ctx context.Context, projectID int64) ([]Secret, error) {
	return selectAs[Secret](ctx, s, `SELECT * FROM secrets WHERE project_id = $1 AND environment = 'production' ORDER BY scope, key`, projectID)
}

// SealedPreviewSecrets returns what a preview of the project may receive, sealed: the preview
// set and the production secrets marked share_with_previews, by scope then key, a preview
// secret before a production one of the same scope and key.
func (s *Store) SealedPreviewSecrets(ctx context.Context, projectID int64) ([]Secret, error) {
	return selectAs[Secret](ctx, s, `
		SELECT * FROM secrets
		WHERE project_id = $1 AND (environment = 'preview' OR (environment = 'production' AND share_with_previews))
		ORDER BY scope, key, environment = 'production'`, projectID)
}

// DeleteSecret removes one secret of a project's environment set ("" means production).
func (s *Store) DeleteSecret(ctx context.Context, projectID int64, environment, scope, key string) error {
	return s.execOne(ctx, "secret", scope+"/"+key, `
		DELETE FROM secrets WHERE project_id = $1 AND environment = $2 AND scope = $3 AND key = $4`,
		projectID, envOrProduction(environment), scope, key)
}

// SecretsNotUnderKey returns every secret, of every project and environment, sealed under
// another key than keyID, locking the rows; call it inside InTx when re-sealing.
func (s *Store) SecretsNotUnderKey(ctx context.Context, keyID string) ([]Secret, error) {
	return selectAs[Secret](ctx, s, `SELECT * FROM secrets WHERE key_id <> $1 ORDER BY id FOR UPDATE`, keyID)
}

// ResealSecret replaces one secret's sealed value without touching updated_at (the value did not change).
func (s *Store) ResealSecret(ctx context.Context, id int64, ciphertext, nonce []byte, keyID string) error {
	return s.execOne(ctx, "secret", id, `
		UPDATE secrets SET value_encrypted = $2, nonce = $3, key_id = $4 WHERE id = $1`, id, ciphertext, nonce, keyID)
}
