package hub_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/apptest"
)

func TestServeHTTP_RefusedTokensGet401BeforeUpgradeAndTouchNoAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	other := apptest.MintToken(t, agent.ID)
	unknown := apptest.MintToken(t, agent.ID+1000)
	before := e.agentRow(agent.ID)

	cases := []struct {
		name, header, wantMsg string
	}{
		{"no header", "", "missing agent token"},
		{"basic scheme", "Basic " + token, "missing agent token"},
		{"bearer without token", "Bearer ", "missing agent token"},
		{"malformed token", "Bearer stg_notanid_x", "malformed agent token"},
		{"token of another product", "Bearer ghp_" + strings.Repeat("a", 36), "malformed agent token"},
		{"wrong secret", "Bearer " + other.Token, "invalid agent token"},
		{"unknown agent", "Bearer " + unknown.Token, "invalid agent token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/agent/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			// A real upgrade request: the refusal must come before the upgrade, not from it.
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			if msg := decodeMessage(t, resp); !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("message %q does not contain %q", msg, tc.wantMsg)
			}
		})
	}

	after := e.agentRow(agent.ID)
	if after.Status != "offline" || after.LastHeartbeat.Valid || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("refused handshakes touched the agent: %+v", after)
	}
	for _, secret := range []string{token, other.Token, unknown.Token, token[strings.LastIndex(token, "_")+1:]} {
		if strings.Contains(e.logs.String(), secret) {
			t.Fatalf("log output contains a token:\n%s", e.logs.String())
		}
	}
	if !strings.Contains(e.logs.String(), "agent refused") {
		t.Fatalf("refusals were not logged:\n%s", e.logs.String())
	}
}

func TestServeHTTP_UnknownAgentAndWrongSecretLookAlike(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, _ := e.newAgent("box")
	wrong := apptest.MintToken(t, agent.ID)
	unknown := apptest.MintToken(t, agent.ID+1)
	var bodies []string
	for _, tok := range []string{wrong.Token, unknown.Token} {
		_, resp, err := e.dial(tok)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial with a bad token: resp %v, err %v; want 401", resp, err)
		}
		bodies = append(bodies, decodeMessage(t, resp))
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("wrong secret answered %q but unknown agent %q: the difference reveals which ids exist", bodies[0], bodies[1])
	}
}

func TestServeHTTP_VerifiedTokenSkipsBcryptUntilTheHashRotates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	e.connectOnce(agent.ID, token)
	e.connectOnce(agent.ID, token)
	if n := e.verif.Load(); n != 1 {
		t.Fatalf("two connections with one token ran bcrypt %d times, want 1", n)
	}

	rotated := apptest.MintToken(t, agent.ID)
	if err := e.st.SetAgentTokenHash(e.ctx, agent.ID, rotated.Hash); err != nil {
		t.Fatal(err)
	}
	_, resp, err := e.dial(token)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: resp %v, err %v; want 401", resp, err)
	}
	e.connectOnce(agent.ID, rotated.Token)
	if n := e.verif.Load(); n != 3 {
		t.Fatalf("bcrypt ran %d times, want 3 (first connect, old token after rotation, new token)", n)
	}
}

func TestServeHTTP_RevokeClosesTheConnectionAndForgetsTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	c := e.connect(agent.ID, token, helloV1())
	e.hub.Revoke(agent.ID)
	if ce := closeOf(t, c); ce.Reason != protocol.CloseReasonTokenRevoked {
		t.Fatalf("close %v, want reason %q", ce, protocol.CloseReasonTokenRevoked)
	}
	e.waitStatus(agent.ID, "offline")
	e.connectOnce(agent.ID, token)
	if n := e.verif.Load(); n != 2 {
		t.Fatalf("bcrypt ran %d times, want 2: Revoke must drop the cached token", n)
	}
}

func TestServeHTTP_NonGETRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	resp, err := http.Post(e.srv.URL+"/agent/ws", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST answered %d, want 405", resp.StatusCode)
	}
}
