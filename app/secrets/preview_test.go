package secrets_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store/storetest"
)

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func byScopeKey(ss []protocol.Secret) map[string]string {
	m := make(map[string]string, len(ss))
	for _, s := range ss {
		m[s.Scope+"/"+s.Key] = s.Value
	}
	return m
}

func mustPut(t *testing.T, svc *secrets.Service, pid int64, e secrets.Entry) {
	t.Helper()
	if _, err := svc.PutEntry(context.Background(), pid, e); err != nil {
		t.Fatalf("put %s %s/%s: %v", e.Environment, e.Scope, e.Key, err)
	}
}

func TestForPreview_GivesThePreviewSetAndSharedProductionSecretsWithPreviewWinning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	svc := secrets.New(st, apptest.Keyring(t, nil))
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "DB_PASSWORD", Value: []byte("prod-db")})
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "SENTRY_DSN", Value: []byte("shared-dsn"), Share: yes()})
	mustPut(t, svc, pid, secrets.Entry{Scope: "web", Key: "API_URL", Value: []byte("prod-api"), Share: yes()})
	mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "web", Key: "API_URL", Value: []byte("preview-api")})
	mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "global", Key: "DB_PASSWORD", Value: []byte("preview-db")})
	mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "global", Key: "STRIPE_KEY", Value: []byte("sk_test")})

	prev, err := svc.ForPreview(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"global/DB_PASSWORD": "preview-db",
		"global/SENTRY_DSN":  "shared-dsn",
		"global/STRIPE_KEY":  "sk_test",
		"web/API_URL":        "preview-api",
	}
	if got := byScopeKey(prev); len(prev) != len(want) || !equal(got, want) {
		t.Fatalf("ForPreview = %v, want %v", got, want)
	}

	prod, err := svc.ForDeploy(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	wantProd := map[string]string{"global/DB_PASSWORD": "prod-db", "global/SENTRY_DSN": "shared-dsn", "web/API_URL": "prod-api"}
	if got := byScopeKey(prod); len(prod) != len(wantProd) || !equal(got, wantProd) {
		t.Fatalf("ForDeploy = %v, want only production values %v", got, wantProd)
	}
}

func TestForPreview_UnsharedProductionSecretsNeverReachPreviews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	svc := secrets.New(st, apptest.Keyring(t, nil))
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "DB_PASSWORD", Value: []byte("prod-db"), Share: yes()})
	prev, err := svc.ForPreview(ctx, pid)
	if err != nil || len(prev) != 1 {
		t.Fatalf("shared: ForPreview = %v, %v", prev, err)
	}
	// Replacing the value without saying keeps the mark; unmarking takes it out of previews.
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "DB_PASSWORD", Value: []byte("prod-db-2")})
	if prev, _ := svc.ForPreview(ctx, pid); len(prev) != 1 || prev[0].Value != "prod-db-2" {
		t.Fatalf("after a value change ForPreview = %v, want the new value still shared", prev)
	}
	if _, err := svc.SetSharing(ctx, pid, "global", "DB_PASSWORD", false); err != nil {
		t.Fatal(err)
	}
	prev, err = svc.ForPreview(ctx, pid)
	if err != nil || len(prev) != 0 {
		t.Fatalf("unshared: ForPreview = %v, %v; want nothing", prev, err)
	}
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "DB_PASSWORD", Value: []byte("prod-db-3"), Share: no()})
	if prev, _ := svc.ForPreview(ctx, pid); len(prev) != 0 {
		t.Fatalf("ForPreview = %v after share false", prev)
	}
}

func TestService_RefusesAnUnknownSetAndSharingAPreviewSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	svc := secrets.New(st, apptest.Keyring(t, nil))
	tests := []struct {
		name string
		e    secrets.Entry
		want string
	}{
		{"unknown set", secrets.Entry{Environment: "staging", Scope: "global", Key: "K"}, `environment "staging" must be "production" or "preview"`},
		{"preview marked shared", secrets.Entry{Environment: "preview", Scope: "global", Key: "K", Share: yes()}, "share_with_previews is for production secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.PutEntry(ctx, pid, tt.e)
			if !errors.Is(err, secrets.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("PutEntry = %v, want %q", err, tt.want)
			}
		})
	}
	if metas, _ := svc.List(ctx, pid); len(metas) != 0 {
		t.Fatalf("refused secrets were stored: %+v", metas)
	}
}

func TestPutAll_StoresEverySecretOrNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	svc := secrets.New(st, apptest.Keyring(t, nil))
	_, err := svc.PutAll(ctx, pid, []secrets.Entry{
		{Environment: "preview", Scope: "global", Key: "A", Value: []byte("1")},
		{Environment: "preview", Scope: "global", Key: "BAD-KEY", Value: []byte("2")},
	})
	if !errors.Is(err, secrets.ErrInvalid) {
		t.Fatalf("PutAll with a bad key = %v, want ErrInvalid", err)
	}
	if metas, _ := svc.List(ctx, pid); len(metas) != 0 {
		t.Fatalf("a refused batch stored %d secrets", len(metas))
	}
	metas, err := svc.PutAll(ctx, pid, []secrets.Entry{
		{Environment: "preview", Scope: "global", Key: "A", Value: []byte("1")},
		{Environment: "preview", Scope: "global", Key: "B", Value: []byte("2")},
	})
	if err != nil || len(metas) != 2 || metas[0].Environment != "preview" {
		t.Fatalf("PutAll = %+v, %v", metas, err)
	}
	prev, err := svc.ForPreview(ctx, pid)
	if got := byScopeKey(prev); err != nil || !equal(got, map[string]string{"global/A": "1", "global/B": "2"}) {
		t.Fatalf("ForPreview = %v, %v", got, err)
	}
}

func TestService_SealedValueMovedBetweenSetsDoesNotOpen(t *testing.T) {
	t.Parallel()
	moves := []struct {
		name     string
		from, to string
		open     func(*secrets.Service) func(context.Context, int64) ([]protocol.Secret, error)
	}{
		{"production value into the preview set", "production", "preview",
			func(s *secrets.Service) func(context.Context, int64) ([]protocol.Secret, error) { return s.ForPreview }},
		{"preview value into the production set", "preview", "production",
			func(s *secrets.Service) func(context.Context, int64) ([]protocol.Secret, error) { return s.ForDeploy }},
	}
	for _, m := range moves {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.NewStore(t)
			pid := projects(t, st, 1)[0]
			svc := secrets.New(st, apptest.Keyring(t, nil))
			mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "TOKEN", Value: []byte("production-value-x1")})
			mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "global", Key: "TOKEN", Value: []byte("preview-value-y2")})
			if _, err := m.open(svc)(ctx, pid); err != nil {
				t.Fatalf("before the move: %v", err)
			}
			// Someone with write access to the table copies one set's ciphertext over the other's.
			if _, err := st.DB().ExecContext(ctx, `
				UPDATE secrets b SET value_encrypted = a.value_encrypted, nonce = a.nonce, key_id = a.key_id
				FROM secrets a WHERE a.project_id = $1 AND b.project_id = $1 AND a.environment = $2 AND b.environment = $3`,
				pid, m.from, m.to); err != nil {
				t.Fatal(err)
			}
			got, err := m.open(svc)(ctx, pid)
			if !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("after the move = %v, %v; want ErrOpen", got, err)
			}
			if strings.Contains(err.Error(), "value-") {
				t.Fatal("the error carries a secret value")
			}
		})
	}
}

func TestService_ProductionValuesSealedBeforePreviewsStillOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	keys := apptest.Keyring(t, nil)
	// A row as the server wrote it before preview sets existed: sealed with SecretAD, inserted
	// without naming an environment.
	old, err := keys.Seal([]byte("from-last-year"), seal.SecretAD(pid, "global", "LEGACY"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().ExecContext(ctx, `INSERT INTO secrets (project_id, scope, key, value_encrypted, nonce, key_id)
		VALUES ($1, 'global', 'LEGACY', $2, $3, $4)`, pid, old.Ciphertext, old.Nonce, old.KeyID); err != nil {
		t.Fatal(err)
	}
	got, err := secrets.New(st, keys).ForDeploy(ctx, pid)
	if err != nil || len(got) != 1 || got[0].Value != "from-last-year" {
		t.Fatalf("ForDeploy = %v, %v", got, err)
	}
}

func TestRotate_ResealsBothSetsSoEachStillOpensInItsOwnSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	oldKey, newKey := apptest.Key(t), apptest.Key(t)
	svc := secrets.New(st, apptest.Keyring(t, oldKey))
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "DB", Value: []byte("prod"), Share: yes()})
	mustPut(t, svc, pid, secrets.Entry{Scope: "global", Key: "ONLY_PROD", Value: []byte("p")})
	mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "global", Key: "DB", Value: []byte("prev")})
	mustPut(t, svc, pid, secrets.Entry{Environment: "preview", Scope: "web", Key: "X", Value: []byte("x")})
	rep, err := secrets.Rotate(ctx, st, apptest.Keyring(t, newKey, oldKey))
	if err != nil || rep.Secrets != 4 {
		t.Fatalf("Rotate = %+v, %v; want 4 secrets re-sealed", rep, err)
	}
	newOnly := secrets.New(st, apptest.Keyring(t, newKey))
	prod, err := newOnly.ForDeploy(ctx, pid)
	if got := byScopeKey(prod); err != nil || !equal(got, map[string]string{"global/DB": "prod", "global/ONLY_PROD": "p"}) {
		t.Fatalf("ForDeploy after rotation = %v, %v", got, err)
	}
	prev, err := newOnly.ForPreview(ctx, pid)
	if got := byScopeKey(prev); err != nil || !equal(got, map[string]string{"global/DB": "prev", "web/X": "x"}) {
		t.Fatalf("ForPreview after rotation = %v, %v", got, err)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
