package deploy_test

import (
	"testing"

	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/hub"
)

var _ hub.IdleSink = (*deploy.Orchestrator)(nil)

func TestOrchestrator_AgentIdleAgainAfterADeclinedUpdateStartsTheWaitingDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	p, sha := e.project(&a)
	// The push arrives while the agent is busy with an update offer: the deployment waits.
	e.push(p, sha)
	if len(e.hub.jobs()) != 0 {
		t.Fatal("dispatched to an agent that is not idle")
	}
	e.hub.setIdle(a.ID, true)
	e.orch.AgentIdle(e.ctx, a.ID)
	if jobs := e.hub.jobs(); len(jobs) != 1 || jobs[0].SHA != sha {
		t.Fatalf("dispatched %+v, want the waiting deployment of %s", jobs, sha[:7])
	}
}
