package hub_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
)

// readInBackground keeps reading c, as a live agent does (so it answers pings), and hands
// each data frame's type to the returned channel.
func readInBackground(t *testing.T, c *websocket.Conn) <-chan string {
	t.Helper()
	frames := make(chan string, 16)
	done := make(chan struct{})
	t.Cleanup(func() { _ = c.CloseNow(); <-done })
	go func() {
		defer close(done)
		defer close(frames)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			typ, _, _ := protocol.Decode(data)
			select {
			case frames <- typ:
			default:
			}
		}
	}()
	return frames
}

func TestDuplicate_SecondAgentWithTheSameTokenIsRefusedWhileTheFirstIsHealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	first := e.connect(agent.ID, token, helloV1())
	frames := readInBackground(t, first)

	for i := range 2 {
		second, _, err := e.dial(token)
		if err != nil {
			t.Fatal(err)
		}
		send(t, second, protocol.TypeHello, protocol.Hello{AgentVersion: "v9", Protocol: protocol.Version, Hostname: "intruder"})
		if ce := closeOf(t, second); ce.Code != websocket.StatusPolicyViolation || ce.Reason != protocol.CloseReasonDuplicate {
			t.Fatalf("attempt %d: newcomer closed with %v, want %q", i+1, ce, protocol.CloseReasonDuplicate)
		}
	}
	// The first connection is untouched and still the agent's.
	if !e.hub.Online(agent.ID) || e.hub.ConnectedCount() != 1 {
		t.Fatal("the first connection is gone")
	}
	if err := e.hub.Dispatch(e.ctx, agent.ID, protocol.Deploy{JobID: e.newDeployment(agent.ID)}); err != nil {
		t.Fatal(err)
	}
	if typ := <-frames; typ != protocol.TypeDeploy {
		t.Fatalf("first connection got %q, want the DEPLOY", typ)
	}
	if a := e.agentRow(agent.ID); a.Version != "v1.2.3" || a.Hostname != "box-1" {
		t.Fatalf("the refused newcomer's HELLO was recorded: %+v", a)
	}
	if e.logIndex("another agent is connected with this token", "hostname=intruder", "connected_hostname=box-1") < 0 {
		t.Fatalf("the refusal is not logged:\n%s", e.logs.String())
	}
	// Audited once a minute at most, however often the newcomer redials.
	entries, err := e.st.AuditForTarget(e.ctx, e.user.ID, "agent", strconv.FormatInt(agent.ID, 10), 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Action)
	}
	if !slices.Equal(actions, []string{hub.AuditDuplicateRefused}) {
		t.Fatalf("audit = %v, want one duplicate_refused", actions)
	}
	if d := string(entries[0].Detail); !strings.Contains(d, `"hostname": "intruder"`) || !strings.Contains(d, `"connected_hostname": "box-1"`) {
		t.Fatalf("audit detail = %s, want both hostnames", d)
	}
}
