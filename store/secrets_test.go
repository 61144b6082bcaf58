package store_test

import (
	"errors"
	"testing"

	"github.com/stagely/stagely/store"
)

func TestSecrets_TheSameKeyLivesOnceInEachSetAndProductionQueriesSeeOnlyProduction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 90, "main")
	put := func(env string, share bool, v byte) store.SecretMeta {
		t.Helper()
		m, err := f.st.PutSecret(f.ctx, store.Secret{ProjectID: p.ID, Environment: env, Scope: "global", Key: "DB",
			ValueEncrypted: []byte{v}, Nonce: make([]byte, 12), KeyID: "k1", ShareWithPreviews: share})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	prod := put("", true, 1)
	prev := put(store.EnvPreview, false, 2)
	if prod.ID == prev.ID || prod.Environment != store.EnvProduction || !prod.ShareWithPreviews || prev.Environment != store.EnvPreview {
		t.Fatalf("rows: %+v %+v", prod, prev)
	}
	if again := put(store.EnvPreview, false, 3); again.ID != prev.ID {
		t.Fatalf("upsert in the preview set made a new row %d", again.ID)
	}
	sealed, err := f.st.SealedSecrets(f.ctx, p.ID)
	if err != nil || len(sealed) != 1 || sealed[0].ValueEncrypted[0] != 1 {
		t.Fatalf("SealedSecrets = %+v, %v; want the production row only", sealed, err)
	}
	forPreview, err := f.st.SealedPreviewSecrets(f.ctx, p.ID)
	if err != nil || len(forPreview) != 2 || forPreview[0].Environment != store.EnvPreview || forPreview[0].ValueEncrypted[0] != 3 {
		t.Fatalf("SealedPreviewSecrets = %+v, %v", forPreview, err)
	}
	if _, err := f.st.SetSecretSharing(f.ctx, p.ID, "global", "DB", false); err != nil {
		t.Fatal(err)
	}
	if forPreview, _ := f.st.SealedPreviewSecrets(f.ctx, p.ID); len(forPreview) != 1 || forPreview[0].Environment != store.EnvPreview {
		t.Fatalf("after unsharing SealedPreviewSecrets = %+v", forPreview)
	}
	metas, err := f.st.SecretMetas(f.ctx, p.ID)
	if err != nil || len(metas) != 2 || metas[0].Environment != store.EnvProduction {
		t.Fatalf("SecretMetas = %+v, %v", metas, err)
	}
	if err := f.st.DeleteSecret(f.ctx, p.ID, store.EnvPreview, "global", "DB"); err != nil {
		t.Fatal(err)
	}
	if sealed, _ := f.st.SealedSecrets(f.ctx, p.ID); len(sealed) != 1 {
		t.Fatal("deleting the preview secret removed the production one")
	}
	if _, err := f.st.SetSecretSharing(f.ctx, p.ID, "global", "MISSING", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetSecretSharing of a missing secret = %v, want ErrNotFound", err)
	}
	// The database itself refuses a preview secret marked as shared.
	if _, err := f.st.PutSecret(f.ctx, store.Secret{ProjectID: p.ID, Environment: store.EnvPreview, Scope: "global", Key: "S",
		ValueEncrypted: []byte{1}, Nonce: make([]byte, 12), KeyID: "k1", ShareWithPreviews: true}); err == nil {
		t.Fatal("a shared preview secret was stored")
	}
}
