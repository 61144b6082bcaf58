// Package secrets keeps project secrets sealed at rest and opens them only in memory, for
// the DEPLOY message of one job.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// MaxValueBytes bounds one secret value; environment variables are not a file store.
const MaxValueBytes = 64 << 10

var (
	keyPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)
	scopePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
)

// ErrInvalid is matched by validation errors; their text says what to fix.
var ErrInvalid = errors.New("invalid secret")

// Store is what the service needs of the database.
type Store interface {
	PutSecret(ctx context.Context, sec store.Secret) (store.SecretMeta, error)
	SecretMetas(ctx context.Context, projectID int64) ([]store.SecretMeta, error)
	SealedSecrets(ctx context.Context, projectID int64) ([]store.Secret, error)
	DeleteSecret(ctx context.Context, projectID int64, scope, key string) error
}

// Service seals secrets on write and opens them for deploys.
type Service struct {
	st   Store
	keys *seal.Keyring
}

// New builds a Service.
func New(st Store, keys *seal.Keyring) *Service { return &Service{st: st, keys: keys} }

// Validate checks a secret's key, scope and value size, with messages that say what to fix.
func Validate(scope, key string, value []byte) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("%w: key %q must start with a letter or _ and hold only letters, digits and _ (like DATABASE_URL)", ErrInvalid, key)
	}
	if !scopePattern.MatchString(scope) {
		return fmt.Errorf("%w: scope %q must be %q or the name of a compose service", ErrInvalid, scope, protocol.ScopeGlobal)
	}
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: value of %s is %d bytes, the limit is %d", ErrInvalid, key, len(value), MaxValueBytes)
	}
	return nil
}

// Put creates or replaces a secret. The value is sealed before it leaves this function.
func (s *Service) Put(ctx context.Context, projectID int64, scope, key string, value []byte) (store.SecretMeta, error) {
	if err := Validate(scope, key, value); err != nil {
		return store.SecretMeta{}, err
	}
	sealed, err := s.keys.Seal(value, seal.SecretAD(projectID, scope, key))
	if err != nil {
		return store.SecretMeta{}, fmt.Errorf("seal secret %s/%s: %w", scope, key, err)
	}
	meta, err := s.st.PutSecret(ctx, store.Secret{
		ProjectID: projectID, Scope: scope, Key: key,
		ValueEncrypted: sealed.Ciphertext, Nonce: sealed.Nonce, KeyID: sealed.KeyID,
	})
	if err != nil {
		return store.SecretMeta{}, fmt.Errorf("store secret %s/%s: %w", scope, key, err)
	}
	return meta, nil
}

// List returns a project's secrets without values.
func (s *Service) List(ctx context.Context, projectID int64) ([]store.SecretMeta, error) {
	return s.st.SecretMetas(ctx, projectID)
}

// Delete removes one secret.
func (s *Service) Delete(ctx context.Context, projectID int64, scope, key string) error {
	return s.st.DeleteSecret(ctx, projectID, scope, key)
}

// ForDeploy opens every secret of a project for one DEPLOY message. A value that does not
// open (tampered, copied between rows, or sealed under a key the server no longer has) fails
// the whole call: deploying with a secret silently missing is worse than not deploying.
func (s *Service) ForDeploy(ctx context.Context, projectID int64) ([]protocol.Secret, error) {
	rows, err := s.st.SealedSecrets(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("load secrets of project %d: %w", projectID, err)
	}
	out := make([]protocol.Secret, 0, len(rows))
	for _, r := range rows {
		pt, err := s.keys.Open(seal.Sealed{Ciphertext: r.ValueEncrypted, Nonce: r.Nonce, KeyID: r.KeyID},
			seal.SecretAD(r.ProjectID, r.Scope, r.Key))
		if err != nil {
			return nil, fmt.Errorf("open secret %s/%s: %w", r.Scope, r.Key, err)
		}
		out = append(out, protocol.Secret{Key: r.Key, Value: string(pt), Scope: r.Scope})
	}
	return out, nil
}
