package deploy

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// finish records a final status and reports it. The report is best effort here: a failed
// report is retried by the sweeper, which finds the row through reported_status.
func (o *Orchestrator) finish(ctx context.Context, p store.Project, id int64, status, errText string, services []protocol.ServiceStatus, problems []stagelyyaml.Problem) error {
	svc, err := json.Marshal(services)
	if err != nil {
		return err
	}
	if services == nil {
		svc = nil
	}
	err = o.opt.Store.FinishDeployment(ctx, id, status, errText, svc, o.opt.Now())
	if store.IsNotFound(err) {
		// Finished by someone else meanwhile (a result racing the sweeper): theirs stands.
		return nil
	}
	if err != nil {
		return err
	}
	d, err := o.opt.Store.DeploymentByID(ctx, id)
	if err != nil {
		return err
	}
	o.observe(d)
	o.log.Info("deployment finished", "deployment", d.ID, "project", p.Name, "sha", d.SHA, "status", d.Status, "error", d.Error)
	o.reportFinal(ctx, p, d, problems)
	if d.IsPreview() {
		o.previewFinished(ctx, p, d)
	}
	return nil
}

func (o *Orchestrator) observe(d store.Deployment) {
	if o.opt.Metrics == nil {
		return
	}
	var dur time.Duration
	if d.FinishedAt.Valid {
		dur = d.FinishedAt.Time.Sub(d.CreatedAt)
	}
	o.opt.Metrics.DeploymentFinished(d.Status, dur)
}
