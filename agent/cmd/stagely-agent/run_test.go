package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/protocol"
)

const goodToken = "stg_agt7_c2VjcmV0LXBhcnQtb2YtdGhlLXRva2Vu"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, body string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun_ConfigErrorsAreClear(t *testing.T) {
	t.Parallel()
	good := `{"server_url":"https://stagely.example.com","token":"` + goodToken + `"}`
	tests := []struct {
		name   string
		config string // file body; "" means no --config flag
		perm   os.FileMode
		env    map[string]string
		want   string
	}{
		{"no config file and no env", "", 0, nil, "does not exist and STAGELY_SERVER_URL and STAGELY_TOKEN are not both set"},
		{"malformed json", `{"server_url":`, 0o600, nil, "parse config"},
		{"unknown key", `{"server-url":"https://x","token":"` + goodToken + `"}`, 0o600, nil, `unknown field "server-url"`},
		{"no token", `{"server_url":"https://stagely.example.com"}`, 0o600, nil, "no token: set \"token\""},
		{"token without stg_ prefix", `{"server_url":"https://stagely.example.com","token":"ghp_abc"}`, 0o600, nil, "not a Stagely agent token"},
		{"token with a space", `{"server_url":"https://stagely.example.com","token":"stg_a_b c"}`, 0o600, nil, "spaces or control characters"},
		{"no server url", `{"token":"` + goodToken + `"}`, 0o600, nil, "no server URL"},
		{"bad url scheme", `{"server_url":"ftp://stagely.example.com","token":"` + goodToken + `"}`, 0o600, nil, "scheme must be https://"},
		{"env overrides a bad file value", good, 0o600, map[string]string{"STAGELY_SERVER_URL": "stagely.example.com"}, "scheme must be https://"},
		{"bad shutdown grace", good, 0o600, map[string]string{"STAGELY_SHUTDOWN_GRACE": "two minutes"}, "STAGELY_SHUTDOWN_GRACE"},
		{"relative data dir", good, 0o600, map[string]string{"STAGELY_DATA_DIR": "data"}, "must be an absolute path"},
		{"unreadable config", good, 0o000, nil, "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if tt.config != "" {
				p := writeConfig(t, tt.config, tt.perm)
				if tt.perm == 0 && os.Geteuid() == 0 {
					// root reads any file: point at a directory instead, which no one can read as a file.
					p = filepath.Dir(p)
				}
				args = []string{"--config", p}
			}
			var stdout, stderr bytes.Buffer
			getenv := env(tt.env)
			if tt.config == "" {
				// The default path must not exist on the test machine for this case.
				if _, err := os.Stat(defaultConfigPath); err == nil {
					t.Fatalf("%s exists on this machine; the test needs it absent", defaultConfigPath)
				}
			}
			err := run(context.Background(), args, getenv, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run error = %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), goodToken) || strings.Contains(stderr.String(), goodToken) {
				t.Fatal("error output contains the token")
			}
		})
	}
}

func TestRun_ExplicitMissingConfigIsAnErrorEvenWithEnv(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"--config", filepath.Join(t.TempDir(), "nope.json")},
		env(map[string]string{"STAGELY_SERVER_URL": "https://x.example", "STAGELY_TOKEN": goodToken}), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("run = %v, want a read config error", err)
	}
}

func TestRun_VersionAndHelpPrintAndExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, "stagely-agent dev\n"},
		{[]string{"--help"}, "STAGELY_TOKEN"},
		{[]string{"-h"}, "Usage: stagely-agent"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout bytes.Buffer
			if err := run(context.Background(), tt.args, env(nil), &stdout, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Fatalf("stdout = %q, want %q", stdout.String(), tt.want)
			}
		})
	}
	if err := run(context.Background(), []string{"--bogus"}, env(nil), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func TestAgentID_OnlyTheIDPartIsLoggable(t *testing.T) {
	t.Parallel()
	for token, want := range map[string]string{
		"stg_agt7_secret":       "agt7",
		"stg_agt7_sec_ret_more": "agt7",
		"stg_onlysecret":        "",
		"stg__secret":           "",
		"ghp_agt7_secret":       "",
	} {
		if got := agentID(token); got != want {
			t.Errorf("agentID(%q) = %q, want %q", token, got, want)
		}
	}
}

// TestRun_RealDeployerReportsFetchFailureThenShutsDownCleanly wires everything run()
// builds, including the real deployer, against the protocol test server. The tarball
// host answers 404, so the deploy fails at fetching without needing Docker.
func TestRun_RealDeployerReportsFetchFailureThenShutsDownCleanly(t *testing.T) {
	t.Parallel()
	srv := agenttest.New(t, agenttest.Options{Token: goodToken, AutoAck: true})
	tarballs := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(tarballs.Close)
	cfg := writeConfig(t, `{"server_url":"`+srv.URL()+`","token":"`+goodToken+`"}`, 0o600)
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr agenttest.LogBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg}, env(map[string]string{"STAGELY_DATA_DIR": dataDir, "STAGELY_PREVIEW_ASK_LISTEN": "127.0.0.1:0"}), &bytes.Buffer{}, &stderr)
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	h, err := srv.WaitConnected(wctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.AgentVersion != "dev" || h.Protocol != protocol.Version || h.Hostname == "" || !slices.Contains(h.Features, protocol.FeaturePreviews) {
		t.Fatalf("HELLO = %+v", h)
	}
	job := protocol.Deploy{
		JobID:   "job-1",
		Project: protocol.Project{ID: "p1", Name: "Shop", ComposeProject: "shop"},
		Repo:    "acme/shop",
		Ref:     "refs/heads/main",
		SHA:     "0123456789abcdef0123456789abcdef01234567",
		Source:  protocol.Source{TarballURL: tarballs.URL + "/tarball", Token: "ghs_sourceTOKEN"},
		Config:  protocol.JobConfig{Strategy: protocol.StrategyRecreate, Timeout: protocol.Duration(time.Minute)},
		Secrets: []protocol.Secret{{Key: "K", Value: "v3ry-secret-value", Scope: protocol.ScopeGlobal}},
	}
	if err := srv.Deploy(wctx, job); err != nil {
		t.Fatal(err)
	}
	f, err := srv.WaitFrame(wctx, func(f agenttest.Frame) bool { return f.Type == protocol.TypeJobResult })
	if err != nil {
		t.Fatal(err)
	}
	res := f.Payload.(*protocol.JobResult)
	if res.JobID != "job-1" || res.Status != protocol.StatusFailure || res.Error == "" {
		t.Fatalf("result = %+v, want a failure explaining the fetch", res)
	}
	if len(srv.Logs("job-1")) == 0 {
		t.Fatal("no LOG_CHUNK from the real deployer")
	}
	for {
		// Files only: the journal keeps its folder of start records, empty once the job ended.
		entries, _ := filepath.Glob(filepath.Join(dataDir, "journal", "*.json"))
		started, _ := filepath.Glob(filepath.Join(dataDir, "journal", "started", "*"))
		if len(entries)+len(started) == 0 {
			break
		}
		if wctx.Err() != nil {
			t.Fatal("acknowledged result still journaled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil on shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	for _, secret := range []string{goodToken, "c2VjcmV0LXBhcnQtb2YtdGhlLXRva2Vu", "ghs_sourceTOKEN", "v3ry-secret-value"} {
		if strings.Contains(stderr.String(), secret) {
			t.Fatalf("agent log contains %q:\n%s", secret, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "agent_id=agt7") {
		t.Fatalf("agent log does not name the agent id:\n%s", stderr.String())
	}
}
