package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/periodic"
	"github.com/stagely/stagely/store"
)

// Run sweeps until ctx ends: it is the part of the state machine that acts on time rather
// than on events, and what makes a restarted server carry on where it stopped.
func (o *Orchestrator) Run(ctx context.Context) error {
	defer o.Wait() // the reports the sweeps started end with ctx
	return periodic.Run(ctx, o.opt.SweepEvery, o.Sweep)
}

// Sweep runs one pass.
func (o *Orchestrator) Sweep(ctx context.Context) {
	now := o.opt.Now()
	st := o.opt.Store

	if stale, err := st.StaleQueued(ctx, now.Add(-o.opt.AgentOfflineWait)); err != nil {
		o.log.Error("sweep: waiting deployments", "err", err)
	} else {
		for _, d := range stale {
			o.failBySweep(ctx, d, fmt.Sprintf("agent offline: no agent of this project connected within %s. Check that stagely-agent runs on the server (docker logs stagely-agent), then press Re-run", o.opt.AgentOfflineWait))
		}
	}

	if lost, err := st.LostDeployments(ctx, now.Add(-o.opt.AgentLostAfter)); err != nil {
		o.log.Error("sweep: lost deployments", "err", err)
	} else {
		for _, d := range lost {
			o.failBySweep(ctx, d, fmt.Sprintf("the agent disconnected during the deployment and did not come back within %s; the server may have rebooted. Check the agent, then press Re-run", o.opt.AgentLostAfter))
		}
	}

	if running, err := st.OverdueDeployments(ctx, now.Add(-o.opt.ResultGrace)); err != nil {
		o.log.Error("sweep: overdue deployments", "err", err)
	} else {
		for _, d := range running {
			limit := jobTimeout(d) + o.opt.ResultGrace
			if d.DispatchedAt.Valid && now.Sub(d.DispatchedAt.Time) > limit {
				o.failBySweep(ctx, d, fmt.Sprintf("no result from the agent within %s of dispatch (the job's timeout plus %s); the agent may have restarted mid-job", limit, o.opt.ResultGrace))
			}
		}
	}

	if ids, err := st.ProjectsWithQueued(ctx); err != nil {
		o.log.Error("sweep: queued projects", "err", err)
	} else {
		for _, id := range ids {
			o.Kick(ctx, id)
		}
	}

	o.StopIdlePreviews(ctx)
	o.retryReports(ctx, now)
}

// reportSettle is how long after a deployment finished the sweeper leaves its report to the
// code that finished it, so the two never report the same deployment at once.
const reportSettle = 30 * time.Second

// maxReportBackoff caps the wait between two attempts at a final report.
const maxReportBackoff = time.Hour

// reportBackoff is the wait after the attempts-th attempt at a final report failed:
// ReportBackoff, doubled for each attempt before, at most maxReportBackoff.
func (o *Orchestrator) reportBackoff(attempts int) time.Duration {
	wait := o.opt.ReportBackoff
	for i := 1; i < attempts && wait < maxReportBackoff; i++ {
		wait *= 2
	}
	return min(wait, maxReportBackoff)
}

// retryReports starts the final reports that are due again, each on its own goroutine and
// with its own deadline, at most ReportWorkers at once: a report GitHub does not answer holds
// one slot until its deadline, never the sweep. The store holds each report it hands out
// (ClaimReports) past that deadline, so no later sweep starts it twice.
func (o *Orchestrator) retryReports(ctx context.Context, now time.Time) {
	free := 0
fill:
	for free < cap(o.reportSlots) {
		select {
		case o.reportSlots <- struct{}{}:
			free++
		default:
			break fill
		}
	}
	if free == 0 {
		return
	}
	due, err := o.opt.Store.ClaimReports(ctx, now, now.Add(-reportSettle), now.Add(o.opt.ReportTimeout+reportSettle), free)
	if err != nil {
		o.log.Error("sweep: unreported deployments", "err", err)
	}
	for range free - len(due) {
		<-o.reportSlots
	}
	for _, d := range due {
		o.reports.Add(1)
		go func() {
			defer o.reports.Done()
			defer func() { <-o.reportSlots }()
			o.retryReport(ctx, d)
		}()
	}
}

// retryReport makes one more attempt at d's final report, within ReportTimeout, and schedules
// the next if it fails.
func (o *Orchestrator) retryReport(ctx context.Context, d store.Deployment) {
	p, err := o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, o.opt.ReportTimeout)
		err = o.sendFinal(rctx, p, d, nil)
		cancel()
	}
	if err != nil {
		o.scheduleReport(ctx, d, d.ReportAttempts, err)
	}
}

func (o *Orchestrator) failBySweep(ctx context.Context, d store.Deployment, msg string) {
	p, err := o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err != nil {
		o.log.Error("sweep: load project", "deployment", d.ID, "err", err)
		return
	}
	if err := o.finish(ctx, p, d.ID, store.DeploymentFailure, msg, nil, nil); err != nil {
		o.log.Error("sweep: fail deployment", "deployment", d.ID, "err", err)
		return
	}
	if d.AgentID.Valid && (d.Status == store.DeploymentDispatched || d.Status == store.DeploymentRunning) {
		// If the agent is still at it, stop it: the deployment is over as far as GitHub knows.
		if err := o.opt.Hub.Cancel(d.AgentID.Int64, jobID(d.ID)); err != nil {
			o.log.Debug("cancel a deployment the sweeper failed", "deployment", d.ID, "err", err)
		}
	}
	o.log.Warn("deployment failed by the sweeper", "deployment", d.ID, "reason", msg)
	o.Kick(ctx, p.ID)
}

func jobTimeout(d store.Deployment) time.Duration {
	var cfg protocol.JobConfig
	if len(d.Config) > 0 && json.Unmarshal(d.Config, &cfg) == nil && cfg.Timeout > 0 {
		return cfg.Timeout.Std()
	}
	return 5 * time.Minute
}
