package deploy

import (
	"context"
	"fmt"

	"github.com/stagely/stagely/store"
)

// Enqueue queues a deployment of sha for project p, supersedes older queued ones, reports
// it to GitHub as queued, and starts it if the project is idle and its agent online.
func (o *Orchestrator) Enqueue(ctx context.Context, p store.Project, sha, ref, trigger string, deliveryID *int64) (store.Deployment, error) {
	return o.enqueue(ctx, p, store.NewDeployment{SHA: sha, Ref: ref, Trigger: trigger, DeliveryID: deliveryID})
}

// enqueue queues nd for project p in nd's environment (production when empty), superseding
// the older ones queued in that environment only.
func (o *Orchestrator) enqueue(ctx context.Context, p store.Project, nd store.NewDeployment) (store.Deployment, error) {
	st := o.opt.Store
	// Stamped on the orchestrator's clock, like every later step: the sweeper measures how long
	// it has waited against that clock.
	nd.ProjectID, nd.CreatedAt = p.ID, o.opt.Now()
	d, err := st.CreateDeployment(ctx, nd)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("queue deployment of %s: %w", short(nd.SHA), err)
	}
	superseded, err := st.SupersedeQueued(ctx, d, o.opt.Now())
	if err != nil {
		return store.Deployment{}, fmt.Errorf("supersede older deployments: %w", err)
	}
	for _, s := range superseded {
		o.observe(s)
		o.reportFinal(ctx, p, s, nil)
	}
	o.reportProgress(ctx, stageQueued, p, &d, nil)
	o.Kick(ctx, p.ID)
	return d, nil
}
