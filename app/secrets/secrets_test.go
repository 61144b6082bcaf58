package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// projects makes a user, an installation and n projects; it returns their ids.
func projects(t *testing.T, st *store.Store, n int) []int64 {
	t.Helper()
	u := storetest.NewUser(t, st, store.User{GitHubID: 1, Login: "alice"})
	in := storetest.NewInstallation(t, st, store.Installation{GitHubID: 2, AccountLogin: "alice", AccountID: 1, AccountType: "User"})
	var ids []int64
	for i := 0; i < n; i++ {
		p := storetest.NewProject(t, st, store.NewProject{UserID: u.ID, InstallationID: in.ID, Name: "p" + string(rune('a'+i)),
			RepoID: int64(100 + i), RepoFullName: "alice/r", DeployBranch: "main"})
		ids = append(ids, p.ID)
	}
	return ids
}

func TestService_PutThenForDeployGivesExactValuesAndListHidesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	svc := secrets.New(st, apptest.Keyring(t, nil))
	values := map[string]string{
		"DOLLAR":    "pa$$word ${HOME} $X",
		"MULTILINE": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
		"UNICODE":   `ünï "quoted" 'single' = spaces  `,
	}
	for k, v := range values {
		if _, err := svc.Put(ctx, pid, "global", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Put(ctx, pid, "backend", "DOLLAR", []byte("backend-only")); err != nil {
		t.Fatal(err)
	}
	got, err := svc.ForDeploy(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("ForDeploy returned %d secrets, want 4", len(got))
	}
	for _, s := range got {
		want := values[s.Key]
		if s.Scope == "backend" {
			want = "backend-only"
		}
		if s.Value != want {
			t.Errorf("%s/%s = %q, want %q", s.Scope, s.Key, s.Value, want)
		}
	}
	// What the database holds is ciphertext only.
	rows, _ := st.SealedSecrets(ctx, pid)
	for _, r := range rows {
		for _, v := range values {
			if bytes.Contains(r.ValueEncrypted, []byte(v)) {
				t.Fatalf("plaintext of %s stored in the database", r.Key)
			}
		}
	}
	metas, err := svc.List(ctx, pid)
	if err != nil || len(metas) != 4 {
		t.Fatalf("List = %d, %v", len(metas), err)
	}
}

func TestService_ValidatesWithMessagesThatSayWhatToFix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scope, key string
		value      []byte
		want       string
	}{
		{"global", "1ABC", nil, "must start with a letter"},
		{"global", "MY-KEY", nil, "like DATABASE_URL"},
		{"", "K", nil, `must be "global" or the name of a compose service`},
		{"we b", "K", nil, "compose service"},
		{"global", "K", make([]byte, secrets.MaxValueBytes+1), "the limit is"},
	}
	for _, tt := range tests {
		t.Run(tt.scope+"/"+tt.key, func(t *testing.T) {
			t.Parallel()
			err := secrets.Validate(tt.scope, tt.key, tt.value)
			if !errors.Is(err, secrets.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestService_CiphertextCopiedToAnotherRowDoesNotOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	ids := projects(t, st, 2)
	svc := secrets.New(st, apptest.Keyring(t, nil))
	if _, err := svc.Put(ctx, ids[0], "global", "TOKEN", []byte("project-a-secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Put(ctx, ids[1], "global", "TOKEN", []byte("project-b-secret")); err != nil {
		t.Fatal(err)
	}
	// An attacker with write access to the table copies A's ciphertext into B's row.
	if _, err := st.DB().ExecContext(ctx, `
		UPDATE secrets b SET value_encrypted = a.value_encrypted, nonce = a.nonce
		FROM secrets a WHERE a.project_id = $1 AND b.project_id = $2`, ids[0], ids[1]); err != nil {
		t.Fatal(err)
	}
	_, err := svc.ForDeploy(ctx, ids[1])
	if !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("ForDeploy after the copy = %v, want ErrOpen", err)
	}
	if strings.Contains(err.Error(), "project-a-secret") {
		t.Fatal("the error carries a secret value")
	}
}

func TestRotate_ResealsEveryRowUnderTheNewKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	ids := projects(t, st, 2)
	oldKey, newKey := apptest.Key(t), apptest.Key(t)
	oldRing := apptest.Keyring(t, oldKey)
	svc := secrets.New(st, oldRing)
	for _, pid := range ids {
		for _, k := range []string{"A", "B", "C"} {
			if _, err := svc.Put(ctx, pid, "global", k, []byte(k+"-value")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A session token and the App credentials are sealed too.
	idHash := bytes.Repeat([]byte{7}, 32)
	tok, _ := oldRing.Seal([]byte("gho_usertoken"), seal.SessionTokenAD(idHash))
	u, _ := st.UserByGitHubID(ctx, 1)
	if err := st.CreateSession(ctx, store.Session{IDHash: idHash, UserID: u.ID, GitHubTokenEncrypted: tok.Ciphertext,
		GitHubTokenNonce: tok.Nonce, GitHubTokenKeyID: nullString(tok.KeyID), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	creds, _ := oldRing.Seal([]byte(`{"pem":"x"}`), seal.AppCredentialsAD(99))
	if err := st.PutGitHubApp(ctx, store.GitHubApp{AppID: 99, ClientID: "Iv1", CredentialsEncrypted: creds.Ciphertext,
		CredentialsNonce: creds.Nonce, CredentialsKeyID: creds.KeyID}); err != nil {
		t.Fatal(err)
	}

	rotating := apptest.Keyring(t, newKey, oldKey)
	rep, err := secrets.Rotate(ctx, st, rotating)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Secrets != 6 || rep.SessionTokens != 1 || rep.AppCredential != 1 {
		t.Fatalf("Rotate report = %+v", rep)
	}
	again, err := secrets.Rotate(ctx, st, rotating)
	if err != nil || again != (secrets.RotateReport{}) {
		t.Fatalf("second Rotate = %+v, %v; want nothing left to do", again, err)
	}

	newOnly := apptest.Keyring(t, newKey)
	for _, pid := range ids {
		got, err := secrets.New(st, newOnly).ForDeploy(ctx, pid)
		if err != nil || len(got) != 3 {
			t.Fatalf("after rotation, with only the new key: %d secrets, %v", len(got), err)
		}
	}
	sess, _ := st.ActiveSession(ctx, idHash, time.Now())
	if pt, err := newOnly.Open(seal.Sealed{Ciphertext: sess.GitHubTokenEncrypted, Nonce: sess.GitHubTokenNonce, KeyID: sess.GitHubTokenKeyID.String}, seal.SessionTokenAD(idHash)); err != nil || string(pt) != "gho_usertoken" {
		t.Fatalf("session token after rotation: %q, %v", pt, err)
	}
	app, _ := st.GitHubAppCredentials(ctx)
	if app.CredentialsKeyID != newOnly.CurrentKeyID() {
		t.Fatalf("App credentials still under key %s", app.CredentialsKeyID)
	}
}

func TestRotate_OneBadRowLeavesEveryRowUnderTheOldKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	pid := projects(t, st, 1)[0]
	oldKey := apptest.Key(t)
	svc := secrets.New(st, apptest.Keyring(t, oldKey))
	for _, k := range []string{"A", "B", "C"} {
		if _, err := svc.Put(ctx, pid, "global", k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DB().ExecContext(ctx, `UPDATE secrets SET value_encrypted = value_encrypted || '\x00'::bytea WHERE key = 'C'`); err != nil {
		t.Fatal(err)
	}
	_, err := secrets.Rotate(ctx, st, apptest.Keyring(t, apptest.Key(t), oldKey))
	if !errors.Is(err, seal.ErrOpen) || !strings.Contains(err.Error(), "global/C") {
		t.Fatalf("Rotate = %v, want ErrOpen naming global/C", err)
	}
	rows, _ := st.SealedSecrets(ctx, pid)
	for _, r := range rows {
		if r.KeyID != seal.KeyID(oldKey) {
			t.Fatalf("secret %s moved to a new key although the rotation failed", r.Key)
		}
	}
}
