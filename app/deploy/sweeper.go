package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// Run sweeps until ctx ends: it is the part of the state machine that acts on time rather
// than on events, and what makes a restarted server carry on where it stopped.
func (o *Orchestrator) Run(ctx context.Context) error {
	t := time.NewTicker(o.opt.SweepEvery)
	defer t.Stop()
	for {
		o.Sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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

	if unreported, err := st.UnreportedFinished(ctx, now.Add(-reportSettle), 20); err != nil {
		o.log.Error("sweep: unreported deployments", "err", err)
	} else {
		for _, d := range unreported {
			p, err := st.ProjectByID(ctx, d.ProjectID)
			if err != nil {
				o.log.Error("sweep: load project of unreported deployment", "deployment", d.ID, "err", err)
				continue
			}
			o.reportFinal(ctx, p, d, nil)
		}
	}
}

// reportSettle is how long after a deployment finished the sweeper leaves its report to the
// code that finished it, so the two never report the same deployment at once.
const reportSettle = 30 * time.Second

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
