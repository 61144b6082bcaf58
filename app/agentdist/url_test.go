package agentdist_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestInstallScript_RunAgainAppliesTheServerURLOnlyWithATokenOfThatServer: running the
// installer again upgrades in place; a server URL other than the one config.json names is
// another server, where the agent's credential means nothing, so it is applied only with a
// new token, and refused, before anything changes, without one.
func TestInstallScript_RunAgainAppliesTheServerURLOnlyWithATokenOfThatServer(t *testing.T) {
	t.Parallel()
	bins := t.TempDir()
	buildAgent(t, runtime.GOARCH, bins)
	srv, _ := serve(t, nil, bins, nil)
	_, script := get(t, srv.URL+"/install.sh")
	const (
		traded   = "stgb_3_dHJhZGVkLWJvb3RzdHJhcC10b2tlbg"
		longLive = "stg_3_bG9uZy1saXZlZC10b2tlbi1vZi1hZ2VudC0z"
		newToken = "stgb_4_bmV3LWJvb3RzdHJhcC10b2tlbi1mb3ItNA"
	)
	sum := sha256.Sum256([]byte(traded))
	exchanged := func(serverURL string) string {
		// As the agent writes it after trading the bootstrap token (keys sorted).
		return `{"bootstrap_sha256":"` + hex.EncodeToString(sum[:]) + `","server_url":"` + serverURL + `","token":"` + longLive + `"}` + "\n"
	}
	for _, tc := range []struct {
		name       string
		config     string
		token      string
		wantErr    string // "" for success
		wantConfig string // the config.json after the run
	}{
		{"same server, no token: upgrade keeps the config", exchanged(srv.URL), "", "", exchanged(srv.URL)},
		{"same server, the traded token: upgrade keeps the config", exchanged(srv.URL), traded, "", exchanged(srv.URL)},
		{"another server, no token: refused", exchanged("http://old.invalid"), "", "http://old.invalid", exchanged("http://old.invalid")},
		{"another server, the traded token: refused", exchanged("http://old.invalid"), traded, "http://old.invalid", exchanged("http://old.invalid")},
		{"another server, a new token: applied", exchanged("http://old.invalid"), newToken, "",
			`{"server_url":"` + srv.URL + `","token":"` + newToken + `"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			path := filepath.Join(root, "etc/stagely/config.json")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-s", "--", "--root", root)
			cmd.Env = append(os.Environ(), "STAGELY_TOKEN="+tc.token)
			cmd.Stdin = bytes.NewReader(script)
			out, err := cmd.CombinedOutput()
			bin := filepath.Join(root, "usr/local/bin/stagely-agent")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("install.sh: %v\n%s", err, out)
				}
				if _, err := os.Stat(bin); err != nil {
					t.Fatalf("no agent installed: %v\n%s", err, out)
				}
			} else {
				if err == nil || !strings.Contains(string(out), tc.wantErr) || !strings.Contains(string(out), "new token") {
					t.Fatalf("install.sh = %v, want a refusal naming %s and asking for a new token:\n%s", err, tc.wantErr, out)
				}
				if _, err := os.Stat(bin); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the refused run installed the agent (%v):\n%s", err, out)
				}
			}
			if got, _ := os.ReadFile(path); string(got) != tc.wantConfig {
				t.Fatalf("config.json = %s, want %s", got, tc.wantConfig)
			}
		})
	}
}
