package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/store"
)

// answerCutter is a reverse proxy in front of the server (WebSocket included) that lets the
// server answer the first POST /agent/bootstrap and then cuts the connection to the agent
// before the answer: the server has committed the exchange, the agent never hears of it.
type answerCutter struct {
	url string
	cut atomic.Bool
}

func newAnswerCutter(t *testing.T, serverURL string) *answerCutter {
	t.Helper()
	c := &answerCutter{}
	c.url = interpose(t, serverURL, func(proxy http.Handler, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/agent/bootstrap" || c.cut.Load() {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Errorf("the server answered the first exchange %d: %s", rec.Code, rec.Body)
		}
		c.cut.Store(true)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	})
	return c
}

// TestBootstrapAnswerLost runs the real agent with a bootstrap token through a proxy that cuts
// the server's answer to its exchange: the agent asks again with the exchange key it kept,
// gets a new credential and comes online, and the bootstrap token alone stays refused.
func TestBootstrapAnswerLost(t *testing.T) {
	t.Parallel()
	var cutter *answerCutter
	s := newStack(t, stackOptions{noAgent: true, agentServerURL: func(u string) string {
		cutter = newAnswerCutter(t, u)
		return cutter.url
	}})
	boot, err := agenttoken.MintBootstrapCost(s.agentRow.ID, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.SetAgentBootstrap(s.ctx, s.agentRow.ID, boot.Hash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, config, []byte(`{"server_url":"`+cutter.url+`","token":"`+boot.Token+`"}`), 0o600)
	var env []string
	for _, kv := range s.agentEnv {
		if !strings.HasPrefix(kv, "STAGELY_TOKEN=") {
			env = append(env, kv)
		}
	}
	s.agent = startProcess(t, "stagely-agent", bin.Agent, env, "--config", config)
	waitFor(t, 2*time.Minute, "the agent online after the lost answer", func() bool {
		a, err := s.st.AgentByID(s.ctx, s.agentRow.ID)
		return err == nil && a.Status == store.AgentOnline
	})
	if !cutter.cut.Load() || !contains(s.agent.out.String(), "bootstrap exchange failed; retrying") {
		t.Fatalf("the first answer was not cut (%v):\n%s", cutter.cut.Load(), tail(s.agent.out.String(), 30))
	}

	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	token, _ := cfg["token"].(string)
	if _, pending := cfg["exchange"]; pending || !strings.HasPrefix(token, agenttoken.Prefix) {
		t.Fatalf("config.json after the exchange: token %.5q, exchange key left: %v", token, pending)
	}
	row, err := s.st.AgentByID(s.ctx, s.agentRow.ID)
	if err != nil || agenttoken.Verify(token, row.TokenHash) != nil {
		t.Fatalf("the agent's token is not its credential (%v)", err)
	}

	// The bootstrap token alone, without the agent's key, is a replay.
	if code := s.bootstrapStatus(boot.Token); code != http.StatusGone {
		t.Fatalf("the bootstrap token without the key answered %d, want 410", code)
	}
	entries, err := s.st.AuditForTarget(s.ctx, s.agentRow.UserID, "agent", strconv.FormatInt(s.agentRow.ID, 10), 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if want := []string{hub.AuditBootstrapReplayed, hub.AuditBootstrapRetried, hub.AuditBootstrapExchanged}; !slices.Equal(actions, want) {
		t.Fatalf("audit = %v, want %v", actions, want)
	}
	if logs := s.agent.out.String() + s.server.out.String(); strings.Contains(logs, boot.Token) || strings.Contains(logs, token) {
		t.Fatal("a token reached a log")
	}
}
