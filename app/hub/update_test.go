package hub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
)

// servedBuild is the agent build a server serves, as agentdist.Dist reports it.
type servedBuild struct {
	version string
	sums    map[string]string
}

func (b servedBuild) Version() string             { return b.version }
func (b servedBuild) Checksum(arch string) string { return b.sums[arch] }

var newBuild = servedBuild{version: "v1.3.0", sums: map[string]string{"amd64": strings.Repeat("a1", 32)}}

// idleSink is a fakeSink that also hears when an agent is idle again after an offer.
type idleSink struct {
	*fakeSink
	idle chan int64
}

func (s idleSink) AgentIdle(_ context.Context, agentID int64) { s.idle <- agentID }

// updatable is HELLO of an agent one version behind newBuild that can update itself.
func updatable() protocol.Hello {
	h := helloV1()
	h.Platform, h.Features = "linux/amd64", []string{protocol.FeatureSelfUpdate}
	return h
}

func newUpdateEnv(t *testing.T, sink hub.Sink) *env {
	t.Helper()
	fs, _ := sink.(idleSink)
	base := fs.fakeSink
	if base == nil {
		base = &fakeSink{}
		sink = base
	}
	return newEnv(t, base, func(o *hub.Options) {
		o.Sink = sink
		o.Updates = newBuild
	})
}

func TestUpdate_IdleAgentBehindIsOfferedTheServedBuildAndIsBusyUntilItAnswers(t *testing.T) {
	t.Parallel()
	sink := idleSink{fakeSink: &fakeSink{}, idle: make(chan int64, 1)}
	e := newUpdateEnv(t, sink)
	agent, token := e.newAgent("box")
	c := e.connect(agent.ID, token, updatable())

	u := expect(t, c, protocol.TypeUpdate).(*protocol.Update)
	want := protocol.Update{Version: "v1.3.0", Platform: "linux/amd64", SHA256: newBuild.sums["amd64"], Path: "/agent/download/linux/amd64"}
	if *u != want {
		t.Fatalf("UPDATE = %+v, want %+v", *u, want)
	}
	if e.hub.Idle(agent.ID) {
		t.Fatal("the agent counts as idle while it applies an update: a DEPLOY could race its restart")
	}
	// A dispatcher that saw the agent idle just before the offer must not send it a job either.
	if err := e.hub.Dispatch(e.ctx, agent.ID, protocol.Deploy{JobID: e.newDeployment(agent.ID)}); !errors.Is(err, hub.ErrAgentUpdating) {
		t.Fatalf("Dispatch during the offer = %v, want ErrAgentUpdating", err)
	}
	send(t, c, protocol.TypeUpdateFailed, protocol.UpdateFailed{Version: "v1.3.0", Error: "checksum mismatch"})
	select {
	case id := <-sink.idle:
		if id != agent.ID {
			t.Fatalf("AgentIdle(%d), want %d", id, agent.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sink never heard the agent is idle again")
	}
	if !e.hub.Idle(agent.ID) {
		t.Fatal("the agent is not idle after it declined the update")
	}
	if e.logIndex("agent update failed", "checksum mismatch") < 0 {
		t.Fatalf("the failure is not logged:\n%s", e.logs.String())
	}
	// One offer per connection: the next frame is the next job, not another UPDATE.
	e.dispatch(agent.ID, c)
}

func TestUpdate_NotOfferedWhenNothingToDoOrTheAgentCannot(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		hello func(*protocol.Hello)
	}{
		{"agent already runs the served build", func(h *protocol.Hello) { h.AgentVersion = newBuild.version }},
		{"development build", func(h *protocol.Hello) { h.AgentVersion = "dev" }},
		{"agent without the feature", func(h *protocol.Hello) { h.Features = nil }},
		{"platform the server has no build for", func(h *protocol.Hello) { h.Platform = "linux/arm64" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newUpdateEnv(t, nil)
			agent, token := e.newAgent("box")
			h := updatable()
			tc.hello(&h)
			c := e.connect(agent.ID, token, h)
			// Frames arrive in order: a DEPLOY first means no UPDATE went out before it.
			e.dispatch(agent.ID, c)
		})
	}
}

func TestUpdate_OffSwitchIsHonouredAndSwitchingOnOffersAtOnce(t *testing.T) {
	t.Parallel()
	e := newUpdateEnv(t, nil)
	agent, c := e.connectUpdatesOff()
	eventually(t, "the log says why no update was offered", func() bool {
		return e.logIndex("agent update not offered: automatic update is off") >= 0
	})
	job := e.dispatch(agent.ID, c)
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: job, Status: protocol.StatusSuccess})
	expect(t, c, protocol.TypeResultAck)
	if !e.hub.Idle(agent.ID) {
		t.Fatal("agent not idle after its job")
	}

	e.hub.SetAutoUpdate(agent.ID, true)
	if u := expect(t, c, protocol.TypeUpdate).(*protocol.Update); u.Version != newBuild.version {
		t.Fatalf("UPDATE for %q, want %q", u.Version, newBuild.version)
	}
}

func TestUpdate_NeverOfferedMidJobButRightAfterIt(t *testing.T) {
	t.Parallel()
	e := newUpdateEnv(t, nil)
	agent, c := e.connectUpdatesOff()
	job := e.dispatch(agent.ID, c)
	e.hub.SetAutoUpdate(agent.ID, true) // switched on while the job runs
	send(t, c, protocol.TypeJobPhase, protocol.JobPhase{JobID: job, Phase: protocol.PhaseDeploying})
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: job, Status: protocol.StatusSuccess})
	// An UPDATE sent mid-job would arrive before the result's acknowledgement.
	expect(t, c, protocol.TypeResultAck)
	expect(t, c, protocol.TypeUpdate)
}
