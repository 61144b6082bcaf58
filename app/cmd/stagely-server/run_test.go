package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

func newKeyB64(t *testing.T) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(apptest.Key(t))
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRun_HelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ arg, want string }{{"--help", "stagely-server migrate"}, {"--version", "stagely-server dev"}} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{tt.arg}, envOf(nil), &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", tt.arg, err)
		}
		if !strings.Contains(out.String(), tt.want) {
			t.Fatalf("%s printed %q", tt.arg, out.String())
		}
	}
	var errOut bytes.Buffer
	if err := run(context.Background(), []string{"deploy-everything"}, envOf(nil), io.Discard, &errOut); err == nil || !strings.Contains(errOut.String(), "Usage:") {
		t.Fatalf("unknown command: %v, printed %q", err, errOut.String())
	}
}

func TestRun_ServeRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	good := map[string]string{"STAGELY_DATABASE_URL": storetest.DefaultAdminURL, "STAGELY_SECRET_KEY": newKeyB64(t)}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing secret key", with("STAGELY_SECRET_KEY", ""), "STAGELY_SECRET_KEY is not set"},
		{"short secret key", with("STAGELY_SECRET_KEY", base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))), "is 16 bytes, want 32"},
		{"secret key not base64", with("STAGELY_SECRET_KEY", "???"), "not valid base64"},
		{"missing database", with("STAGELY_DATABASE_URL", ""), "STAGELY_DATABASE_URL is not set"},
		{"database not postgres", with("STAGELY_DATABASE_URL", "mysql://x"), "not a postgres:// URL"},
		{"bad public url", with("STAGELY_PUBLIC_URL", "stagely.example.com"), "STAGELY_PUBLIC_URL"},
		{"bad private key", with("STAGELY_GITHUB_APP_PRIVATE_KEY", "not a pem"), "paste the whole .pem file"},
		{"half an app", with("STAGELY_GITHUB_APP_ID", "12"), "STAGELY_GITHUB_WEBHOOK_SECRET is not set"},
		{"trusted proxy not a CIDR", with("STAGELY_TRUSTED_PROXIES", "172.16.0.0/12, caddy"), `STAGELY_TRUSTED_PROXIES entry "caddy"`},
		{"unreachable database", with("STAGELY_DATABASE_URL", "postgres://u:p@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"), "check STAGELY_DATABASE_URL and that PostgreSQL is running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{"serve"}, envOf(tt.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRun_MigrateAppliesFromEmptyThenIsANoOp(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"STAGELY_DATABASE_URL": storetest.NewEmptyDatabase(t)})
	var first, second bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, env, &first, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first.String(), "applied") {
		t.Fatalf("first migrate printed %q", first.String())
	}
	if err := run(context.Background(), []string{"migrate"}, env, &second, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(second.String(), "nothing to apply") {
		t.Fatalf("second migrate printed %q", second.String())
	}
}

func TestRun_RotateKeyResealsAndRefusesWithoutTheOldKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewDatabase(t)
	st := storetest.Open(t, dsn)
	u := storetest.NewUser(t, st, store.User{GitHubID: 1, Login: "a"})
	in := storetest.NewInstallation(t, st, store.Installation{GitHubID: 1, AccountLogin: "a", AccountID: 1, AccountType: "User"})
	p := storetest.NewProject(t, st, store.NewProject{UserID: u.ID, InstallationID: in.ID, Name: "web", RepoID: 1, RepoFullName: "a/web", DeployBranch: "main"})
	oldKey, newKey := apptest.Key(t), apptest.Key(t)
	oldB64, newB64 := base64.StdEncoding.EncodeToString(oldKey), base64.StdEncoding.EncodeToString(newKey)
	oldRing := apptest.Keyring(t, oldKey)
	if _, err := secrets.New(st, oldRing).Put(ctx, p.ID, "global", "DB", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}

	var errOut bytes.Buffer
	err := run(ctx, []string{"rotate-key"}, envOf(map[string]string{"STAGELY_DATABASE_URL": dsn, "STAGELY_SECRET_KEY": newB64}), io.Discard, &errOut)
	if err == nil || !strings.Contains(err.Error(), "STAGELY_SECRET_KEY_PREVIOUS") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rotate without the old key = %v", err)
	}

	var out bytes.Buffer
	env := envOf(map[string]string{"STAGELY_DATABASE_URL": dsn, "STAGELY_SECRET_KEY": newB64, "STAGELY_SECRET_KEY_PREVIOUS": oldB64})
	if err := run(ctx, []string{"rotate-key"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 secret(s)") {
		t.Fatalf("rotate-key printed %q", out.String())
	}
	newRing := apptest.Keyring(t, newKey)
	got, err := secrets.New(st, newRing).ForDeploy(ctx, p.ID)
	if err != nil || len(got) != 1 || got[0].Value != "s3cret" {
		t.Fatalf("after rotate-key, with only the new key: %v, %v", got, err)
	}
	if strings.Contains(out.String()+errOut.String(), "s3cret") {
		t.Fatal("rotate-key printed a secret value")
	}
}

func TestRun_ServeAnswersHealthAndReadinessThenStops(t *testing.T) {
	t.Parallel()
	// startServer's cleanup cancels run and fails the test unless it returns nil.
	addr, _ := startServer(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}
}
