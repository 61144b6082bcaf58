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
	WriteSecret(ctx context.Context, w store.SecretWrite) (store.SecretMeta, error)
	WriteSecrets(ctx context.Context, ws []store.SecretWrite) ([]store.SecretMeta, error)
	SetSecretSharing(ctx context.Context, projectID int64, scope, key string, share bool) (store.SecretMeta, error)
	SecretMetas(ctx context.Context, projectID int64) ([]store.SecretMeta, error)
	SealedSecrets(ctx context.Context, projectID int64) ([]store.Secret, error)
	SealedPreviewSecrets(ctx context.Context, projectID int64) ([]store.Secret, error)
	DeleteSecret(ctx context.Context, projectID int64, environment, scope, key string) error
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

// ValidateEnvironment checks the set a secret goes to, and that only production secrets are
// shared with previews (a preview secret already is one).
func ValidateEnvironment(environment string, share *bool) error {
	switch environment {
	case store.EnvProduction:
	case store.EnvPreview:
		if share != nil && *share {
			return fmt.Errorf("%w: share_with_previews is for production secrets; a preview secret already reaches previews", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: environment %q must be %q or %q", ErrInvalid, environment, store.EnvProduction, store.EnvPreview)
	}
	return nil
}

// Entry is one secret to create or replace. Environment "" means production; Share nil keeps
// a replaced secret's share mark (false for a new secret).
type Entry struct {
	Environment string
	Scope, Key  string
	Value       []byte
	Share       *bool
}

// adFor is the additional data a secret is sealed with: it binds the value to its project,
// scope, key and set. Production keeps the AD it always had, so existing rows still open.
func adFor(projectID int64, environment, scope, key string) []byte {
	if environment == store.EnvPreview {
		return seal.PreviewSecretAD(projectID, scope, key)
	}
	return seal.SecretAD(projectID, scope, key)
}

// seal validates e and seals its value; the plaintext does not leave this function.
func (s *Service) seal(projectID int64, e Entry) (store.SecretWrite, error) {
	if e.Environment == "" {
		e.Environment = store.EnvProduction
	}
	if err := ValidateEnvironment(e.Environment, e.Share); err != nil {
		return store.SecretWrite{}, err
	}
	if err := Validate(e.Scope, e.Key, e.Value); err != nil {
		return store.SecretWrite{}, err
	}
	sealed, err := s.keys.Seal(e.Value, adFor(projectID, e.Environment, e.Scope, e.Key))
	if err != nil {
		return store.SecretWrite{}, fmt.Errorf("seal secret %s/%s: %w", e.Scope, e.Key, err)
	}
	return store.SecretWrite{Secret: store.Secret{
		ProjectID: projectID, Environment: e.Environment, Scope: e.Scope, Key: e.Key,
		ValueEncrypted: sealed.Ciphertext, Nonce: sealed.Nonce, KeyID: sealed.KeyID,
	}, Share: e.Share}, nil
}

// Put creates or replaces a production secret, keeping its share mark. The value is sealed
// before it leaves this function.
func (s *Service) Put(ctx context.Context, projectID int64, scope, key string, value []byte) (store.SecretMeta, error) {
	return s.PutEntry(ctx, projectID, Entry{Scope: scope, Key: key, Value: value})
}

// PutEntry creates or replaces one secret of either set.
func (s *Service) PutEntry(ctx context.Context, projectID int64, e Entry) (store.SecretMeta, error) {
	w, err := s.seal(projectID, e)
	if err != nil {
		return store.SecretMeta{}, err
	}
	meta, err := s.st.WriteSecret(ctx, w)
	if err != nil {
		return store.SecretMeta{}, fmt.Errorf("store secret %s/%s: %w", e.Scope, e.Key, err)
	}
	return meta, nil
}

// PutAll creates or replaces many secrets at once: every one is stored, or, when any is
// invalid or the write fails, none is.
func (s *Service) PutAll(ctx context.Context, projectID int64, entries []Entry) ([]store.SecretMeta, error) {
	ws := make([]store.SecretWrite, 0, len(entries))
	for _, e := range entries {
		w, err := s.seal(projectID, e)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	metas, err := s.st.WriteSecrets(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("store %d secrets: %w", len(ws), err)
	}
	return metas, nil
}

// SetSharing marks or unmarks a production secret for previews without touching its value.
func (s *Service) SetSharing(ctx context.Context, projectID int64, scope, key string, share bool) (store.SecretMeta, error) {
	return s.st.SetSecretSharing(ctx, projectID, scope, key, share)
}

// List returns a project's secrets of both sets without values.
func (s *Service) List(ctx context.Context, projectID int64) ([]store.SecretMeta, error) {
	return s.st.SecretMetas(ctx, projectID)
}

// Delete removes one secret of a set ("" means production).
func (s *Service) Delete(ctx context.Context, projectID int64, environment, scope, key string) error {
	return s.st.DeleteSecret(ctx, projectID, environment, scope, key)
}

// ForDeploy opens every production secret of a project for one DEPLOY message. A value that
// does not open (tampered, copied between rows, or sealed under a key the server no longer
// has) fails the whole call: deploying with a secret silently missing is worse than not
// deploying. Preview secrets never reach production.
func (s *Service) ForDeploy(ctx context.Context, projectID int64) ([]protocol.Secret, error) {
	rows, err := s.st.SealedSecrets(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("load secrets of project %d: %w", projectID, err)
	}
	return s.open(rows)
}

// ForPreview opens what a pull request preview of the project receives: the preview set,
// plus the production secrets marked share_with_previews. A preview secret wins over a
// shared production one of the same scope and key. It fails whole as ForDeploy does.
func (s *Service) ForPreview(ctx context.Context, projectID int64) ([]protocol.Secret, error) {
	rows, err := s.st.SealedPreviewSecrets(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("load preview secrets of project %d: %w", projectID, err)
	}
	kept := rows[:0]
	for _, r := range rows {
		// Rows come by scope and key, a preview row first: a shared production row of the
		// same scope and key right after it is overridden.
		if n := len(kept); n > 0 && kept[n-1].Scope == r.Scope && kept[n-1].Key == r.Key {
			continue
		}
		kept = append(kept, r)
	}
	return s.open(kept)
}

func (s *Service) open(rows []store.Secret) ([]protocol.Secret, error) {
	out := make([]protocol.Secret, 0, len(rows))
	for _, r := range rows {
		pt, err := s.keys.Open(seal.Sealed{Ciphertext: r.ValueEncrypted, Nonce: r.Nonce, KeyID: r.KeyID},
			adFor(r.ProjectID, r.Environment, r.Scope, r.Key))
		if err != nil {
			return nil, fmt.Errorf("open %s secret %s/%s: %w", r.Environment, r.Scope, r.Key, err)
		}
		out = append(out, protocol.Secret{Key: r.Key, Value: string(pt), Scope: r.Scope})
	}
	return out, nil
}
