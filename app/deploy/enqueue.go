package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// Enqueue queues a deployment of sha for project p, supersedes older queued ones, reports
// it to GitHub as queued, and starts it if the project is idle and its agent online.
func (o *Orchestrator) Enqueue(ctx context.Context, p store.Project, sha, ref, trigger string, deliveryID *int64) (store.Deployment, error) {
	st := o.opt.Store
	d, err := st.CreateDeployment(ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha, Ref: ref, Trigger: trigger, DeliveryID: deliveryID})
	if err != nil {
		return store.Deployment{}, fmt.Errorf("queue deployment of %s: %w", short(sha), err)
	}
	superseded, err := st.SupersedeQueued(ctx, p.ID, d.ID, o.opt.Now())
	if err != nil {
		return store.Deployment{}, fmt.Errorf("supersede older deployments: %w", err)
	}
	for _, s := range superseded {
		o.observe(s)
		o.reportFinal(ctx, p, s, nil)
	}
	o.reportQueued(ctx, p, &d)
	o.Kick(ctx, p.ID)
	return d, nil
}

// reportQueued creates the deployment's check run, pending commit status and GitHub
// deployment. A failure is logged and left to the final report, which creates what is missing.
func (o *Orchestrator) reportQueued(ctx context.Context, p store.Project, d *store.Deployment) {
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		o.log.Warn("report queued deployment", "deployment", d.ID, "err", err)
		return
	}
	title := fmt.Sprintf("Queued: %s to %s", short(d.SHA), p.Name)
	checkID, err := gh.CreateCheckRun(ctx, p.RepoFullName, github.NewCheckRun{
		Name: CheckDeploy, HeadSHA: d.SHA, ExternalID: jobID(d.ID), DetailsURL: o.deploymentURL(*d),
		Status: "queued", Title: title, Summary: fmt.Sprintf("Deployment #%d of `%s` (%s) is queued.", d.ID, short(d.SHA), d.Trigger),
	})
	if err != nil {
		o.log.Warn("create check run", "deployment", d.ID, "err", err)
	}
	if err := gh.CreateStatus(ctx, p.RepoFullName, d.SHA, github.CommitStatus{
		State: "pending", Context: StatusContext, Description: title, TargetURL: o.deploymentURL(*d),
	}); err != nil {
		o.log.Warn("create commit status", "deployment", d.ID, "err", err)
	}
	ghDeployID, err := gh.CreateDeployment(ctx, p.RepoFullName, github.NewDeployment{
		Ref: d.SHA, Environment: p.Name, Description: fmt.Sprintf("Stagely deployment #%d (%s)", d.ID, d.Trigger),
	})
	if err != nil {
		o.log.Warn("create GitHub deployment", "deployment", d.ID, "err", err)
	} else if err := gh.CreateDeploymentStatus(ctx, p.RepoFullName, ghDeployID, github.DeploymentStatus{
		State: "queued", Description: title, LogURL: o.deploymentURL(*d),
	}); err != nil {
		o.log.Warn("create deployment status", "deployment", d.ID, "err", err)
	}
	var cr, gd *int64
	if checkID != 0 {
		cr = &checkID
		d.CheckRunID.Int64, d.CheckRunID.Valid = checkID, true
	}
	if ghDeployID != 0 {
		gd = &ghDeployID
		d.GitHubDeploymentID.Int64, d.GitHubDeploymentID.Valid = ghDeployID, true
	}
	if cr != nil || gd != nil {
		if err := o.opt.Store.SetDeploymentGitHubIDs(ctx, d.ID, cr, gd); err != nil {
			o.log.Error("save GitHub ids", "deployment", d.ID, "err", err)
		}
	}
}

var errInstallationInactive = errors.New("the GitHub App installation is suspended or deleted")

func (o *Orchestrator) githubFor(ctx context.Context, p store.Project) (GitHub, error) {
	in, err := o.opt.Store.InstallationByID(ctx, p.InstallationID)
	if err != nil {
		return nil, err
	}
	if in.DeletedAt.Valid {
		return nil, errInstallationInactive
	}
	return o.opt.GitHub(in.GitHubID), nil
}
