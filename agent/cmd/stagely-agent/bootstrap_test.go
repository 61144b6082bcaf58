package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/protocol"
)

const (
	bootToken = "stgb_7_c2VjcmV0LXBhcnQtb2YtdGhlLXRva2Vu"
	longToken = "stg_7_bG9uZy1saXZlZC1zZWNyZXQtb2YtdGhlLWFnZW50"
)

// bootstrapServer answers POST /agent/bootstrap as docs/agents.md describes the server's
// endpoint: each answer in turn (status, body), then 410 for ever.
func bootstrapServer(t *testing.T, answers ...[2]string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != bootstrapPath || r.Header.Get("Authorization") != "Bearer "+bootToken {
			t.Errorf("request %s %s with Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		status, body := "410", `{"message":"bootstrap token already used"}`
		if int(n) <= len(answers) {
			status, body = answers[n-1][0], answers[n-1][1]
		}
		w.Header().Set("Content-Type", "application/json")
		code := map[string]int{"200": 200, "410": 410, "503": 503, "429": 429, "401": 401}[status]
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func newExchanger(t *testing.T, path string) (exchanger, *agenttest.LogBuffer) {
	t.Helper()
	logs := &agenttest.LogBuffer{}
	return exchanger{
		client: &http.Client{Timeout: 10 * time.Second}, log: slog.New(slog.NewTextHandler(logs, nil)),
		configPath: path, firstWait: time.Millisecond, maxWait: 10 * time.Millisecond,
	}, logs
}

func TestExchange_WritesTheLongLivedTokenToTheConfigAtomically(t *testing.T) {
	t.Parallel()
	srv, calls := bootstrapServer(t, [2]string{"503", `{"message":"busy"}`}, [2]string{"200", `{"token":"` + longToken + `"}`})
	path := writeConfig(t, `{"server_url":"`+srv.URL+`","token":"`+bootToken+`"}`, 0o600)
	x, logs := newExchanger(t, path)

	got, err := x.exchange(context.Background(), srv.URL, bootToken)
	if err != nil || got != longToken {
		t.Fatalf("exchange = %q, %v", got, err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d requests, want a retry after the 503", calls.Load())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v (%v), want 0600", fi.Mode(), err)
	}
	var doc map[string]string
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(bootToken))
	if doc["token"] != longToken || doc["server_url"] != srv.URL || doc["bootstrap_sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("config = %s", raw)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left next to the config: %v", entries)
	}
	if strings.Contains(logs.String(), longToken) || strings.Contains(logs.String(), bootToken) {
		t.Fatalf("a token reached the log:\n%s", logs.String())
	}
	// The file loads as the agent's config from then on, with the long-lived token.
	cfg, err := loadConfig(path, true, env(nil))
	if err != nil || cfg.Token != longToken {
		t.Fatalf("reload = %q, %v", cfg.Token, err)
	}
}

func TestExchange_RefusalStopsWithTheServersReasonAndKeepsTheConfig(t *testing.T) {
	t.Parallel()
	srv, calls := bootstrapServer(t)
	body := `{"server_url":"` + srv.URL + `","token":"` + bootToken + `"}`
	path := writeConfig(t, body, 0o600)
	x, _ := newExchanger(t, path)
	_, err := x.exchange(context.Background(), srv.URL, bootToken)
	if !errors.Is(err, errBootstrapRefused) || !strings.Contains(err.Error(), "already used") || calls.Load() != 1 {
		t.Fatalf("exchange = %v after %d requests, want one refusal naming the reason", err, calls.Load())
	}
	cfg, err := loadConfig(path, true, env(nil))
	if err != nil || cfg.Token != bootToken || cfg.ServerURL != srv.URL {
		t.Fatalf("config after the refusal: %+v, %v; want the bootstrap token and server kept", cfg, err)
	}
}

// TestExchange_AnswerLostIsAskedForAgainWithTheKeyKeptOnDisk: the server minted the
// credential but the connection was cut before its answer, and the agent was stopped then;
// the restarted agent asks again with the same exchange key, which it kept in the config file.
func TestExchange_AnswerLostIsAskedForAgainWithTheKeyKeptOnDisk(t *testing.T) {
	t.Parallel()
	ctx, stopAgent := context.WithCancel(context.Background())
	var calls atomic.Int64
	var firstKey atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(protocol.BootstrapKeyHeader)
		if calls.Add(1) == 1 {
			firstKey.Store(key)
			// Answered by the server, cut on the way back; the agent stops meanwhile.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			stopAgent()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if len(key) != protocol.BootstrapKeyLen || key != firstKey.Load() {
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"message":"bootstrap token already used"}`))
			return
		}
		_, _ = w.Write([]byte(`{"token":"` + longToken + `"}`))
	}))
	t.Cleanup(srv.Close)
	path := writeConfig(t, `{"server_url":"`+srv.URL+`","token":"`+bootToken+`"}`, 0o600)
	x, logs := newExchanger(t, path)
	if _, err := x.exchange(ctx, srv.URL, bootToken); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run = %v, want it stopped", err)
	}
	key, _ := firstKey.Load().(string)
	if raw, _ := os.ReadFile(path); key == "" || !strings.Contains(string(raw), key) {
		t.Fatalf("the exchange key %q is not in the config: %s", key, raw)
	}

	x, _ = newExchanger(t, path)
	got, err := x.exchange(context.Background(), srv.URL, bootToken)
	if err != nil || got != longToken || calls.Load() != 2 {
		t.Fatalf("restarted agent: exchange = %q, %v after %d requests; want the token on the retry", got, err, calls.Load())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), key) || strings.Contains(string(raw), "exchange") {
		t.Fatalf("the exchange key stayed in the config: %s", raw)
	}
	if cfg, err := loadConfig(path, true, env(nil)); err != nil || cfg.Token != longToken {
		t.Fatalf("reload = %+v, %v", cfg, err)
	}
	if strings.Contains(logs.String(), key) {
		t.Fatalf("the exchange key reached the log:\n%s", logs.String())
	}
}

func TestExchange_UnwritableConfigDirectoryFailsBeforeAsking(t *testing.T) {
	t.Parallel()
	srv, calls := bootstrapServer(t)
	x, _ := newExchanger(t, filepath.Join(t.TempDir(), "missing", "config.json"))
	if _, err := x.exchange(context.Background(), srv.URL, bootToken); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Fatalf("exchange = %v, want the config to be unwritable", err)
	}
	if calls.Load() != 0 {
		t.Fatal("the token was spent although its answer could not be kept")
	}
}

func TestLoadConfig_BootstrapTokenInTheEnvironmentNeverOverridesTheTradedOne(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `{"server_url":"https://s.example","token":"`+longToken+`"}`, 0o600)
	cfg, err := loadConfig(path, true, env(map[string]string{"STAGELY_TOKEN": bootToken}))
	if err != nil || cfg.Token != longToken {
		t.Fatalf("token = %q, %v; want the file's long-lived one", cfg.Token, err)
	}
	path = writeConfig(t, `{"server_url":"https://s.example","token":"`+bootToken+`"}`, 0o600)
	if cfg, err = loadConfig(path, true, env(nil)); err != nil || cfg.Token != bootToken || agentID(cfg.Token) != "7" {
		t.Fatalf("bootstrap token from the file = %q, %v", cfg.Token, err)
	}
}
