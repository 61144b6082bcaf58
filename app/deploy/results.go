package deploy

import (
	"context"
	"strconv"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// The Orchestrator is the hub's sink: it hears what agents report.

// AgentConnected starts whatever waited for this agent.
func (o *Orchestrator) AgentConnected(ctx context.Context, agentID int64, _ protocol.Hello) {
	o.kickAgent(ctx, agentID)
}

// kickAgent offers the agent its longest-waiting project's next deployment; the agent
// takes one job at a time, so the other projects stay queued until its next result.
func (o *Orchestrator) kickAgent(ctx context.Context, agentID int64) {
	ids, err := o.opt.Store.ProjectsWaitingOnAgent(ctx, agentID)
	if err != nil {
		o.log.Error("list projects waiting on agent", "agent", agentID, "err", err)
		return
	}
	for _, id := range ids {
		if !o.opt.Hub.Idle(agentID) {
			return
		}
		o.Kick(ctx, id)
	}
}

// JobAccepted marks the deployment running.
func (o *Orchestrator) JobAccepted(ctx context.Context, agentID int64, job string) {
	id, err := strconv.ParseInt(job, 10, 64)
	if err != nil {
		o.log.Warn("agent accepted an unknown job", "agent", agentID, "job", job)
		return
	}
	if err := o.opt.Store.MarkRunning(ctx, id, agentID, o.opt.Now()); err != nil {
		o.log.Warn("mark deployment running", "deployment", id, "err", err)
	}
}

// JobPhase is logged only; the check run shows the outcome.
func (o *Orchestrator) JobPhase(_ context.Context, agentID int64, job, phase string) {
	o.log.Debug("job phase", "agent", agentID, "job", job, "phase", phase)
}

// JobResult records a job's outcome, reports it to GitHub and starts the project's next
// deployment. It is idempotent: a result sent twice (after a reconnect) changes nothing
// the second time. A nil return lets the hub acknowledge the result to the agent.
func (o *Orchestrator) JobResult(ctx context.Context, agentID int64, res protocol.JobResult) error {
	id, err := strconv.ParseInt(res.JobID, 10, 64)
	if err != nil {
		o.log.Warn("result for a job id Stagely never issued; acknowledging it", "agent", agentID, "job", res.JobID)
		return nil
	}
	d, err := o.opt.Store.DeploymentByID(ctx, id)
	if store.IsNotFound(err) {
		o.log.Warn("result for a deleted deployment; acknowledging it", "agent", agentID, "deployment", id)
		return nil
	}
	if err != nil {
		return err
	}
	if !d.AgentID.Valid || d.AgentID.Int64 != agentID {
		// Job ids are plain numbers: an agent must not be able to finish another's deployment.
		o.log.Warn("result for a deployment not dispatched to this agent; acknowledging and ignoring it", "agent", agentID, "deployment", id)
		return nil
	}
	if d.Finished() {
		return nil
	}
	p, err := o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err != nil {
		return err
	}
	if err := o.finish(ctx, p, d.ID, resultStatus(res.Status), res.Error, res.Services, nil); err != nil {
		return err
	}
	o.kickAgent(ctx, agentID)
	return nil
}

func resultStatus(s string) string {
	switch s {
	case protocol.StatusSuccess, protocol.StatusFailure, protocol.StatusTimedOut, protocol.StatusRolledBack, protocol.StatusCancelled:
		return s // the wire values are the store's values
	default:
		return store.DeploymentFailure
	}
}
