package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// CheckRunHandler handles GitHub's "Re-run" of a Stagely check run and the buttons of the
// deploy check run.
type CheckRunHandler struct{ o *Orchestrator }

// NewCheckRunHandler returns the handler of check_run webhooks.
func NewCheckRunHandler(o *Orchestrator) CheckRunHandler { return CheckRunHandler{o: o} }

// Handle re-runs a check run (rerequested) or does what its pressed button says
// (requested_action).
func (h CheckRunHandler) Handle(ctx context.Context, _ int64, ev webhook.CheckRun) (string, error) {
	switch ev.Action {
	case "rerequested":
		if strings.HasPrefix(ev.Name, CheckValidate) {
			return h.o.Validate(ctx, ev.InstallationID, ev.Repo, ev.HeadSHA)
		}
		return h.onDeployment(ctx, ev, func(d store.Deployment, p store.Project) (string, error) {
			return h.redeploy(ctx, d, p, store.TriggerRerun, "re-run")
		})
	case "requested_action":
		if ev.RequestedActionIdentifier == ActionDeployPreview {
			return h.o.approvePreview(ctx, ev)
		}
		return h.onDeployment(ctx, ev, func(d store.Deployment, p store.Project) (string, error) {
			switch ev.RequestedActionIdentifier {
			case ActionRedeploy:
				return h.redeploy(ctx, d, p, store.TriggerRedeploy, "redeploy")
			case ActionRollback:
				return h.rollback(ctx, d, p)
			default:
				return fmt.Sprintf("ignored: unknown check run action %q", ev.RequestedActionIdentifier), nil
			}
		})
	default:
		return fmt.Sprintf("ignored: check_run %s", ev.Action), nil
	}
}

// onDeployment calls act with the deployment the check run reports on, and says "ignored"
// for a check run that is not a Stagely deployment's.
func (h CheckRunHandler) onDeployment(ctx context.Context, ev webhook.CheckRun, act func(store.Deployment, store.Project) (string, error)) (string, error) {
	d, err := h.o.opt.Store.DeploymentByCheckRunID(ctx, ev.CheckRunID)
	if store.IsNotFound(err) {
		return fmt.Sprintf("ignored: check run %d is not a Stagely deployment", ev.CheckRunID), nil
	}
	if err != nil {
		return "", err
	}
	p, err := h.o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err != nil {
		return "", err
	}
	return act(d, p)
}

// redeploy deploys the commit of d again, in d's environment. A preview is redeployed only
// at its pull request's head, and only while the pull request is open.
func (h CheckRunHandler) redeploy(ctx context.Context, d store.Deployment, p store.Project, trigger, what string) (string, error) {
	if d.IsPreview() {
		pv, err := h.o.opt.Store.PreviewByNumber(ctx, p.ID, store.PreviewNumber(d.Environment))
		if err != nil {
			return "", err
		}
		switch {
		case pv.State == store.PreviewStopped || pv.State == store.PreviewStopping:
			return fmt.Sprintf("ignored: %s of #%d: the preview of pull request #%d is stopped", what, d.ID, pv.PRNumber), nil
		case pv.HeadSHA != d.SHA:
			return fmt.Sprintf("ignored: %s of #%d: pull request #%d is at %s now", what, d.ID, pv.PRNumber, short(pv.HeadSHA)), nil
		}
	}
	nd, err := h.o.enqueue(ctx, p, store.NewDeployment{SHA: d.SHA, Ref: d.Ref, Trigger: trigger, Environment: d.Environment})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s of #%d: deploying %s as #%d", what, d.ID, short(d.SHA), nd.ID), nil
}

// rollback deploys the last commit before d's that deployed successfully.
func (h CheckRunHandler) rollback(ctx context.Context, d store.Deployment, p store.Project) (string, error) {
	if d.IsPreview() {
		return fmt.Sprintf("ignored: roll back from #%d: a preview follows its pull request's head", d.ID), nil
	}
	prev, err := h.o.opt.Store.PreviousGood(ctx, p.ID, d.ID, d.SHA)
	if store.IsNotFound(err) {
		return fmt.Sprintf("ignored: roll back from #%d: no earlier successful deployment of another commit", d.ID), nil
	}
	if err != nil {
		return "", err
	}
	nd, err := h.o.Enqueue(ctx, p, prev.SHA, prev.Ref, store.TriggerRollback, nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("roll back from #%d: deploying %s (last good, #%d) as #%d", d.ID, short(prev.SHA), prev.ID, nd.ID), nil
}
