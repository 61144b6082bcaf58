package store

import (
	"context"
	"time"
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
	// Environment is the set the secret belongs to: "production" or "preview".
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

// PutSecret creates or replaces the secret (project, scope, key) with a sealed value.
func (s *Store) PutSecret(ctx context.Context, sec Secret) (SecretMeta, error) {
	return getAs[SecretMeta](ctx, s, "secret", sec.Scope+"/"+sec.Key, `
		INSERT INTO secrets (project_id, scope, key, value_encrypted, nonce, key_id)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (project_id, environment, scope, key) DO UPDATE
		SET value_encrypted = EXCLUDED.value_encrypted, nonce = EXCLUDED.nonce,
		    key_id = EXCLUDED.key_id, updated_at = now()
		RETURNING id, project_id, scope, key, created_at, updated_at, environment, share_with_previews`,
		sec.ProjectID, sec.Scope, sec.Key, sec.ValueEncrypted, sec.Nonce, sec.KeyID)
}

// SecretMetas lists a project's secrets without values, by scope then key.
func (s *Store) SecretMetas(ctx context.Context, projectID int64) ([]SecretMeta, error) {
	return selectAs[SecretMeta](ctx, s, `
		SELECT id, project_id, scope, key, created_at, updated_at, environment, share_with_previews FROM secrets
		WHERE project_id = $1 AND environment = 'production' ORDER BY scope, key`, projectID)
}

// SealedSecrets returns a project's secrets with their sealed values, for building a DEPLOY.
func (s *Store) SealedSecrets(ctx context.Context, projectID int64) ([]Secret, error) {
	return selectAs[Secret](ctx, s, `SELECT * FROM secrets WHERE project_id = $1 AND environment = 'production' ORDER BY scope, key`, projectID)
}

// DeleteSecret removes one secret of a project.
func (s *Store) DeleteSecret(ctx context.Context, projectID int64, scope, key string) error {
	return s.execOne(ctx, "secret", scope+"/"+key, `
		DELETE FROM secrets WHERE project_id = $1 AND environment = 'production' AND scope = $2 AND key = $3`, projectID, scope, key)
}

// SecretsNotUnderKey returns every secret, of every project, sealed under another key than
// keyID, locking the rows; call it inside InTx when re-sealing.
func (s *Store) SecretsNotUnderKey(ctx context.Context, keyID string) ([]Secret, error) {
	return selectAs[Secret](ctx, s, `SELECT * FROM secrets WHERE key_id <> $1 ORDER BY id FOR UPDATE`, keyID)
}

// ResealSecret replaces one secret's sealed value without touching updated_at (the value did not change).
func (s *Store) ResealSecret(ctx context.Context, id int64, ciphertext, nonce []byte, keyID string) error {
	return s.execOne(ctx, "secret", id, `
		UPDATE secrets SET value_encrypted = $2, nonce = $3, key_id = $4 WHERE id = $1`, id, ciphertext, nonce, keyID)
}
