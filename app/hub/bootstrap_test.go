package hub_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/store"
)

// newWaitingAgent creates an agent as the API does: no long-lived token, a bootstrap token
// valid until expires. It returns the agent and its bootstrap token.
func (e *env) newWaitingAgent(name string, expires time.Time) (store.Agent, string) {
	e.t.Helper()
	var minted agenttoken.Minted
	a, err := e.st.CreateAgent(e.ctx, e.user.ID, name, func(id int64) (string, error) {
		var err error
		minted, err = agenttoken.MintBootstrapCost(id, bcrypt.MinCost)
		return "", err
	})
	if err != nil {
		e.t.Fatalf("create agent: %v", err)
	}
	if err := e.st.SetAgentBootstrap(e.ctx, a.ID, minted.Hash, expires); err != nil {
		e.t.Fatalf("set bootstrap token: %v", err)
	}
	return e.agentRow(a.ID), minted.Token
}

// exchange posts the bootstrap token and returns the status, the long-lived token (on 200)
// or the error message.
func (e *env) exchange(token string) (int, string) {
	e.t.Helper()
	status, answer, err := e.exchangeAt(e.srv.URL, token, "")
	if err != nil {
		e.t.Fatalf("POST /agent/bootstrap: %v", err)
	}
	return status, answer
}

// exchangeAt posts the bootstrap token, and the exchange key unless it is "", to the server
// at base; err is a failed round trip.
func (e *env) exchangeAt(base, token, key string) (int, string, error) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, base+"/agent/bootstrap", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set(protocol.BootstrapKeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	status, answer := e.answer(resp)
	return status, answer, nil
}

// answer reads an answer of POST /agent/bootstrap: the status and the token or the message.
func (e *env) answer(resp *http.Response) (int, string) {
	e.t.Helper()
	defer resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("POST /agent/bootstrap answered without Cache-Control: no-store")
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, decodeMessage(e.t, resp)
	}
	var answer hub.BootstrapAnswer
	if err := jsonDecode(resp, &answer); err != nil {
		e.t.Fatalf("decode answer: %v", err)
	}
	return resp.StatusCode, answer.Token
}

// cheapMint has the hub mint the agents' long-lived tokens at bcrypt's lowest cost, which
// only makes the tests faster.
func cheapMint(o *hub.Options) {
	o.MintToken = func(id int64) (agenttoken.Minted, error) { return agenttoken.MintCost(id, bcrypt.MinCost) }
}

// auditActions lists the actions of the agent's audit entries, newest first.
func (e *env) auditActions(agentID int64) []string {
	e.t.Helper()
	entries, err := e.st.AuditForTarget(e.ctx, e.user.ID, "agent", strconv.FormatInt(agentID, 10), 50)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, a := range entries {
		out = append(out, a.Action)
	}
	return out
}

func TestBootstrap_TokenWorksOnceForALongLivedTokenThatConnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, cheapMint)
	agent, boot := e.newWaitingAgent("box", time.Now().Add(24*time.Hour))
	if !agent.WaitingForFirstConnection() {
		t.Fatalf("a new agent is not waiting for its first connection: %+v", agent)
	}
	// The bootstrap token is no credential for the WebSocket itself.
	if _, resp, err := e.dial(boot); err == nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(decodeMessage(t, resp), "POST /agent/bootstrap") {
		t.Fatalf("dial with the bootstrap token: %v", err)
	}

	status, token := e.exchange(boot)
	if status != http.StatusOK || !strings.HasPrefix(token, agenttoken.Prefix) {
		t.Fatalf("exchange = %d %q, want 200 and a stg_ token", status, token)
	}
	row := e.agentRow(agent.ID)
	if row.WaitingForFirstConnection() || !row.BootstrapUsedAt.Valid || agenttoken.Verify(token, row.TokenHash) != nil {
		t.Fatalf("after the exchange: token hash %q, used %v", row.TokenHash, row.BootstrapUsedAt)
	}
	e.connect(agent.ID, token, helloV1())
	if a := e.waitStatus(agent.ID, "online"); a.Hostname != "box-1" {
		t.Fatalf("agent after connecting = %+v", a)
	}
	if logs := e.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, boot) {
		t.Fatalf("a token reached the log:\n%s", logs)
	}
	if got := e.auditActions(agent.ID); !slices.Equal(got, []string{hub.AuditBootstrapExchanged}) {
		t.Fatalf("audit = %v, want the exchange", got)
	}
}

func TestBootstrap_ReplayIsRefusedAndAuditedAndTheAgentKeepsItsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, cheapMint)
	agent, boot := e.newWaitingAgent("box", time.Now().Add(24*time.Hour))
	_, token := e.exchange(boot)

	status, msg := e.exchange(boot)
	if status != http.StatusGone || !strings.Contains(msg, "already used") {
		t.Fatalf("replay = %d %q, want 410 already used", status, msg)
	}
	if got := e.auditActions(agent.ID); !slices.Equal(got, []string{hub.AuditBootstrapReplayed, hub.AuditBootstrapExchanged}) {
		t.Fatalf("audit = %v, want the replay after the exchange", got)
	}
	entries, _ := e.st.AuditForTarget(e.ctx, e.user.ID, "agent", strconv.FormatInt(agent.ID, 10), 1)
	if d := string(entries[0].Detail); !strings.Contains(d, `"source"`) || !strings.Contains(d, `"used_at"`) || strings.Contains(d, "stg") {
		t.Fatalf("replay audit detail = %s", d)
	}
	if agenttoken.Verify(token, e.agentRow(agent.ID).TokenHash) != nil {
		t.Fatal("the replay changed the agent's long-lived token")
	}
	e.connect(agent.ID, token, helloV1())
}

func TestBootstrap_ConcurrentExchangesOfOneTokenYieldOneCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, cheapMint)
	_, boot := e.newWaitingAgent("box", time.Now().Add(24*time.Hour))
	const n = 4
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i], _ = e.exchange(boot) })
	}
	wg.Wait()
	slices.Sort(statuses)
	if want := []int{http.StatusOK, http.StatusGone, http.StatusGone, http.StatusGone}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses = %v, want %v", statuses, want)
	}
}

func TestBootstrap_ExpiredTokenIsRefused(t *testing.T) {
	t.Parallel()
	clock := clocktest.New()
	tests := []struct {
		name    string
		expires time.Time
		advance time.Duration
	}{
		{"expiry in the past in the database", clock.Now().Add(-time.Minute), 0},
		{"the clock moved past the expiry", clock.Now().Add(24 * time.Hour), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := clocktest.At(clock.Now())
			e := newEnv(t, nil, func(o *hub.Options) { o.Now = c.Now })
			agent, boot := e.newWaitingAgent("box", tt.expires)
			c.Advance(tt.advance)
			status, msg := e.exchange(boot)
			if status != http.StatusGone || !strings.Contains(msg, "expired") {
				t.Fatalf("exchange = %d %q, want 410 expired", status, msg)
			}
			if !e.agentRow(agent.ID).WaitingForFirstConnection() {
				t.Fatal("an expired token gave the agent a credential")
			}
			if got := e.auditActions(agent.ID); !slices.Equal(got, []string{hub.AuditBootstrapExpired}) {
				t.Fatalf("audit = %v, want the expired attempt", got)
			}
		})
	}
}

func TestBootstrap_WrongTokensAreRefusedAndRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.AgentRate = hub.Rate{Burst: 2, Every: time.Hour} })
	agent, boot := e.newWaitingAgent("box", time.Now().Add(24*time.Hour))
	forged, err := agenttoken.MintBootstrapCost(agent.ID, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		if status, msg := e.exchange(forged.Token); status != want {
			t.Fatalf("attempt %d with a forged token = %d %q, want %d", i+1, status, msg, want)
		}
	}
	// The limit holds for the real token too, so it cannot be guessed by many tries.
	if status, _ := e.exchange(boot); status != http.StatusTooManyRequests {
		t.Fatalf("the real token during the limit = %d, want 429", status)
	}
	for _, tok := range []string{"", "stg_1_x", fmt.Sprintf("stgb_%d_short", agent.ID)} {
		if status, _ := e.exchange(tok); status != http.StatusUnauthorized {
			t.Errorf("exchange of %q = %d, want 401", tok, status)
		}
	}
	if got := e.auditActions(agent.ID); len(got) != 0 {
		t.Fatalf("guesses reached the audit log: %v", got)
	}
}

func TestBootstrap_WaitingAgentHasNoLongLivedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, _ := e.newWaitingAgent("box", time.Now().Add(time.Hour))
	guess, err := agenttoken.MintCost(agent.ID, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := e.dial(guess.Token)
	if err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial with a stg_ token of a waiting agent: %v", err)
	}
	if e.verif.Load() != 0 {
		t.Fatal("the empty token hash was checked with bcrypt")
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if status := getStatus(ctx, t, e.srv.URL+"/agent/bootstrap"); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /agent/bootstrap = %d, want 405", status)
	}
}

// cuttingProxy forwards requests to target; the first POST /agent/bootstrap is answered by
// the server, and then the connection to the client is cut before the answer: the server
// has minted the credential, the agent never sees it.
func cuttingProxy(t *testing.T, target string) *httptest.Server {
	t.Helper()
	var cut atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.Path, r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Error(err)
			return
		}
		if r.URL.Path == "/agent/bootstrap" && cut.CompareAndSwap(false, true) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}))
	t.Cleanup(proxy.Close)
	return proxy
}

func TestBootstrap_AnswerLostIsRecoveredWithTheSameExchangeKeyOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, cheapMint)
	agent, boot := e.newWaitingAgent("box", time.Now().Add(24*time.Hour))
	key := strings.Repeat("k", protocol.BootstrapKeyLen)
	proxy := cuttingProxy(t, e.srv.URL)
	if status, _, err := e.exchangeAt(proxy.URL, boot, key); err == nil {
		t.Fatalf("the proxy let the first answer through (%d)", status)
	}
	if e.agentRow(agent.ID).WaitingForFirstConnection() {
		t.Fatal("the server did not mint the credential before the answer was lost")
	}

	// Without the key, or with another, the used token stays refused.
	for _, k := range []string{"", strings.Repeat("x", protocol.BootstrapKeyLen)} {
		if status, msg, err := e.exchangeAt(proxy.URL, boot, k); err != nil || status != http.StatusGone || !strings.Contains(msg, "already used") {
			t.Fatalf("replay with key %q = %d %q, %v; want 410 already used", k, status, msg, err)
		}
	}
	status, token, err := e.exchangeAt(proxy.URL, boot, key)
	if err != nil || status != http.StatusOK || !strings.HasPrefix(token, agenttoken.Prefix) {
		t.Fatalf("retry with the key = %d, %v; want 200 and a stg_ token", status, err)
	}
	if agenttoken.Verify(token, e.agentRow(agent.ID).TokenHash) != nil {
		t.Fatal("the credential of the retry is not the agent's")
	}
	e.connect(agent.ID, token, helloV1())
	e.waitStatus(agent.ID, "online")
	// Once the credential is in use, the key gets nothing more.
	if status, msg, err := e.exchangeAt(proxy.URL, boot, key); err != nil || status != http.StatusGone {
		t.Fatalf("retry after the agent connected = %d %q, %v; want 410", status, msg, err)
	}
	if agenttoken.Verify(token, e.agentRow(agent.ID).TokenHash) != nil {
		t.Fatal("a retry after the agent connected replaced its credential")
	}
	got := e.auditActions(agent.ID)
	if !slices.Contains(got, hub.AuditBootstrapRetried) || !slices.Contains(got, hub.AuditBootstrapReplayed) || got[len(got)-1] != hub.AuditBootstrapExchanged {
		t.Fatalf("audit = %v, want the exchange, the refused replay and the retry", got)
	}
	if logs := e.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, boot) || strings.Contains(logs, key) {
		t.Fatalf("a token or the key reached the log:\n%s", logs)
	}
}

func TestBootstrap_RetryWithTheKeyIsRefusedAfterTheWindow(t *testing.T) {
	t.Parallel()
	c := clocktest.New()
	e := newEnv(t, nil, func(o *hub.Options) {
		o.Now = c.Now
		cheapMint(o)
	})
	agent, boot := e.newWaitingAgent("box", c.Now().Add(24*time.Hour))
	key := strings.Repeat("k", protocol.BootstrapKeyLen)
	if status, _, err := e.exchangeAt(e.srv.URL, boot, key); err != nil || status != http.StatusOK {
		t.Fatalf("exchange = %d, %v", status, err)
	}
	c.Advance(hub.BootstrapRetryWindow + time.Second)
	if status, msg, err := e.exchangeAt(e.srv.URL, boot, key); err != nil || status != http.StatusGone || !strings.Contains(msg, "already used") {
		t.Fatalf("retry after the window = %d %q, %v; want 410", status, msg, err)
	}
	if got := e.auditActions(agent.ID); got[0] != hub.AuditBootstrapReplayed {
		t.Fatalf("audit = %v, want the refused retry recorded", got)
	}
}
