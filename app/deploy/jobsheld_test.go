package deploy_test

import (
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

func TestOrchestrator_JobsHeldResendsWhatNeverArrivedAndFailsWhatTheAgentLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	kept, keptSHA := e.project(&a)
	e.push(kept, keptSHA)
	lost, lostSHA := e.project(&a)
	e.push(lost, lostSHA)
	unsent, unsentSHA := e.project(&a)
	e.push(unsent, unsentSHA)
	// kept and lost were accepted by the agent; unsent was recorded as dispatched but its
	// DEPLOY never left (the server stopped in between).
	for _, p := range []store.Project{kept, lost} {
		d := e.latest(p)
		// The first push went to the idle agent; the others waited behind it.
		if d.Status == store.DeploymentQueued {
			if err := e.st.MarkDispatched(e.ctx, d.ID, a.ID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
		e.orch.JobAccepted(e.ctx, a.ID, jobIDOf(d))
	}
	if err := e.st.MarkDispatched(e.ctx, e.latest(unsent).ID, a.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}

	// The agent reconnects holding only kept.
	e.orch.JobsHeld(e.ctx, a.ID, []protocol.HeldJob{{JobID: jobIDOf(e.latest(kept)), State: protocol.JobRunning}})

	if d := e.latest(kept); d.Status != store.DeploymentRunning {
		t.Fatalf("held deployment %s, want running", d.Status)
	}
	d := e.latest(lost)
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "does not know this job") {
		t.Fatalf("lost deployment %s %q, want a failure that says why", d.Status, d.Error)
	}
	if run := e.checkRun(lost, lostSHA); run.Conclusion != "failure" {
		t.Fatalf("lost deployment's check run %q", run.Conclusion)
	}
	if d := e.latest(unsent); d.Status != store.DeploymentQueued {
		t.Fatalf("unsent deployment %s, want queued to be sent again", d.Status)
	}
	// Once the agent is idle it gets the unsent deployment again; nothing waited for the
	// sweeper's bounds (the clock never moved).
	e.hub.setIdle(a.ID, true)
	e.orch.AgentConnected(e.ctx, a.ID, protocol.Hello{})
	var resent bool
	for _, j := range e.hub.jobs() {
		resent = resent || j.JobID == jobIDOf(e.latest(unsent))
	}
	if !resent {
		t.Fatalf("unsent deployment not dispatched again: %+v", e.hub.jobs())
	}
}
