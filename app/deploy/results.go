package deploy

import (
	"context"
	"strconv"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// The Orchestrator is the hub's sink: it hears what agents report.

// AgentConnected notes what the agent supports and starts whatever waited for it.
func (o *Orchestrator) AgentConnected(ctx context.Context, agentID int64, hello protocol.Hello) {
	o.features.set(agentID, hello.Features)
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

// JobsHeld settles the deployments dispatched to the agent that its HELLO does not list:
// one still marked dispatched never reached the agent (this server stopped between
// recording and sending it, or the connection died with the DEPLOY in it), so it goes
// back to the queue and is sent again; one marked running has no result coming (the agent
// lost it with its data directory), so it fails now rather than when the sweeper's bounds
// run out. Nothing has been dispatched to the agent on this connection yet.
func (o *Orchestrator) JobsHeld(ctx context.Context, agentID int64, held []protocol.HeldJob) {
	holds := map[string]bool{}
	for _, j := range held {
		holds[j.JobID] = true
	}
	active, err := o.opt.Store.ActiveDeployments(ctx, agentID)
	if err != nil {
		o.log.Error("list the deployments of a reconnected agent", "agent", agentID, "err", err)
		return
	}
	for _, d := range active {
		if holds[jobID(d.ID)] {
			continue
		}
		o.settleLost(ctx, agentID, d)
	}
}

// settleLost requeues or fails a deployment its agent does not hold; see JobsHeld.
func (o *Orchestrator) settleLost(ctx context.Context, agentID int64, d store.Deployment) {
	fctx, cancel := fallback(ctx)
	defer cancel()
	if d.Status == store.DeploymentDispatched {
		if err := o.opt.Store.Requeue(fctx, d.ID); err != nil && !store.IsNotFound(err) {
			o.log.Error("requeue a deployment its agent never received", "deployment", d.ID, "err", err)
			return
		}
		o.log.Warn("deployment never reached its agent; sending it again", "deployment", d.ID, "agent", agentID)
		return
	}
	p, err := o.opt.Store.ProjectByID(fctx, d.ProjectID)
	if err != nil {
		o.log.Error("load the project of a deployment its agent lost", "deployment", d.ID, "err", err)
		return
	}
	msg := "The agent reconnected and does not know this job: it lost it (restarted without its data directory, or reinstalled) before the deploy finished, so no result will come. Check the project's services on the server, then press Re-run."
	if err := o.finish(fctx, p, d.ID, store.DeploymentFailure, msg, nil, nil); err != nil {
		o.log.Error("fail a deployment its agent lost", "deployment", d.ID, "err", err)
		return
	}
	o.log.Warn("deployment failed: its agent does not know it", "deployment", d.ID, "agent", agentID)
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

// JobPlan puts what the job's swap will change on its check run, while the job runs. It is
// best effort, like the other progress reports: the final report shows the plan again.
func (o *Orchestrator) JobPlan(ctx context.Context, agentID int64, job string, plan protocol.Plan) {
	id, err := strconv.ParseInt(job, 10, 64)
	if err != nil {
		return
	}
	d, err := o.opt.Store.DeploymentByID(ctx, id)
	if err != nil {
		o.log.Warn("load the deployment of a plan", "deployment", id, "err", err)
		return
	}
	if !d.AgentID.Valid || d.AgentID.Int64 != agentID || d.Finished() {
		return
	}
	p, err := o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err != nil {
		o.log.Warn("load the project of a plan", "deployment", id, "err", err)
		return
	}
	o.log.Info("deployment planned", "deployment", id, "plan", plan.String())
	f, err := o.gather(ctx, stageStarted, p, &d, nil)
	if err == nil {
		f.plan = &plan
		err = o.send(ctx, stagePlanned, f, o.render(stagePlanned, f))
	}
	if err != nil {
		o.log.Warn("report deployment to GitHub", "stage", stagePlanned, "deployment", d.ID, "err", err)
	}
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
