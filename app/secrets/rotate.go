package secrets

import (
	"context"
	"fmt"

	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// RotateReport counts the values re-sealed under the current key.
type RotateReport struct {
	Secrets       int
	SessionTokens int
	AppCredential int
}

// Rotate re-seals, in one transaction, every sealed value not yet under the keyring's
// current key: project secrets, users' GitHub tokens in sessions, and the stored App
// credentials. Either every row moves to the new key or none does.
func Rotate(ctx context.Context, st *store.Store, keys *seal.Keyring) (RotateReport, error) {
	var rep RotateReport
	cur := keys.CurrentKeyID()
	err := st.InTx(ctx, func(tx *store.Store) error {
		rep = RotateReport{}
		rows, err := tx.SecretsNotUnderKey(ctx, cur)
		if err != nil {
			return fmt.Errorf("list secrets to re-seal: %w", err)
		}
		for _, r := range rows {
			re, err := keys.Reseal(seal.Sealed{Ciphertext: r.ValueEncrypted, Nonce: r.Nonce, KeyID: r.KeyID},
				adFor(r.ProjectID, r.Environment, r.Scope, r.Key))
			if err != nil {
				return fmt.Errorf("re-seal %s secret %d (%s/%s of project %d): %w", r.Environment, r.ID, r.Scope, r.Key, r.ProjectID, err)
			}
			if err := tx.ResealSecret(ctx, r.ID, re.Ciphertext, re.Nonce, re.KeyID); err != nil {
				return err
			}
			rep.Secrets++
		}

		sessions, err := tx.SessionsNotUnderKey(ctx, cur)
		if err != nil {
			return fmt.Errorf("list sessions to re-seal: %w", err)
		}
		for _, s := range sessions {
			re, err := keys.Reseal(seal.Sealed{Ciphertext: s.GitHubTokenEncrypted, Nonce: s.GitHubTokenNonce, KeyID: s.GitHubTokenKeyID.String},
				seal.SessionTokenAD(s.IDHash))
			if err != nil {
				return fmt.Errorf("re-seal a session's GitHub token: %w", err)
			}
			if err := tx.ResealSessionToken(ctx, s.IDHash, re.Ciphertext, re.Nonce, re.KeyID); err != nil {
				return err
			}
			rep.SessionTokens++
		}

		app, err := tx.GitHubAppForUpdate(ctx)
		switch {
		case store.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case app.CredentialsKeyID == cur:
			return nil
		}
		re, err := keys.Reseal(seal.Sealed{Ciphertext: app.CredentialsEncrypted, Nonce: app.CredentialsNonce, KeyID: app.CredentialsKeyID},
			seal.AppCredentialsAD(app.AppID))
		if err != nil {
			return fmt.Errorf("re-seal the GitHub App credentials: %w", err)
		}
		app.CredentialsEncrypted, app.CredentialsNonce, app.CredentialsKeyID = re.Ciphertext, re.Nonce, re.KeyID
		if err := tx.PutGitHubApp(ctx, app); err != nil {
			return err
		}
		rep.AppCredential = 1
		return nil
	})
	if err != nil {
		return RotateReport{}, err
	}
	return rep, nil
}
