package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// logTailLines is how much of the deployment's log goes into the check run's text.
const logTailLines = 300

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

// conclusion maps a deployment status to GitHub's check run conclusion, commit status state
// and deployment status state.
func conclusion(status string) (check, commit, deployment string) {
	switch status {
	case store.DeploymentSuccess:
		return "success", "success", "success"
	case store.DeploymentTimedOut:
		return "timed_out", "failure", "failure"
	case store.DeploymentCancelled:
		return "cancelled", "error", "inactive"
	case store.DeploymentSuperseded:
		return "skipped", "error", "inactive"
	default: // failure, rolled_back
		return "failure", "failure", "failure"
	}
}

// reportFinal completes the check run, the commit status and the GitHub deployment of a
// finished deployment, creating the check run and deployment if the queued report had failed.
func (o *Orchestrator) reportFinal(ctx context.Context, p store.Project, d store.Deployment, problems []stagelyyaml.Problem) {
	if err := o.reportFinalErr(ctx, p, d, problems); err != nil {
		if !permanent(err) {
			o.log.Warn("report finished deployment to GitHub; will retry", "deployment", d.ID, "status", d.Status, "err", err)
			return
		}
		// Retrying cannot help (the App was uninstalled, the repository is gone, GitHub refuses
		// the request): the deployment's own record stays, and the retry queue stays short.
		o.log.Error("report finished deployment to GitHub; giving up", "deployment", d.ID, "status", d.Status, "err", err)
	}
	if err := o.opt.Store.SetReportedStatus(ctx, d.ID, d.Status); err != nil {
		o.log.Error("record GitHub report", "deployment", d.ID, "err", err)
	}
}

func (o *Orchestrator) reportFinalErr(ctx context.Context, p store.Project, d store.Deployment, problems []stagelyyaml.Problem) error {
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return err
	}
	var services []protocol.ServiceStatus
	if len(d.Services) > 0 {
		if err := json.Unmarshal(d.Services, &services); err != nil {
			return fmt.Errorf("read services of deployment #%d: %w", d.ID, err)
		}
	}
	lines, err := o.opt.Store.LogTail(ctx, d.ID, logTailLines)
	if err != nil {
		return err
	}
	rep := github.Report{Status: d.Status, SHA: d.SHA, Environment: p.Name, Error: d.Error}
	if d.FinishedAt.Valid {
		start := d.CreatedAt
		if d.StartedAt.Valid {
			start = d.StartedAt.Time
		}
		rep.Duration = d.FinishedAt.Time.Sub(start)
	}
	for _, s := range services {
		rep.Services = append(rep.Services, github.ServiceRow{Name: s.Name, State: s.State, Health: s.Health, ContainerID: s.ContainerID})
		if len(s.LogTail) > 0 && rep.FailedService == "" {
			rep.FailedService = s.Name
		}
	}
	if d.Status == store.DeploymentRolledBack {
		if prev, err := o.opt.Store.LastSuccessful(ctx, p.ID, d.ID); err == nil {
			rep.RolledBackTo = prev.SHA
		}
	}
	for _, l := range lines {
		rep.LogTail = append(rep.LogTail, l.Line)
	}
	title, summary, text := github.Summary(rep)
	if d.Status == store.DeploymentSuperseded {
		title, summary, text = supersededReport(ctx, o.opt.Store, d)
	}
	check, commitState, deployState := conclusion(d.Status)

	var actions []github.Action
	if d.Status != store.DeploymentSuperseded {
		actions = append(actions, github.Action{Label: "Redeploy", Description: "Deploy this commit again", Identifier: ActionRedeploy})
		if _, err := o.opt.Store.PreviousGood(ctx, p.ID, d.ID, d.SHA); err == nil {
			actions = append(actions, github.Action{Label: "Roll back", Description: "Deploy the previous good commit", Identifier: ActionRollback})
		}
	}

	checkID := d.CheckRunID.Int64
	if !d.CheckRunID.Valid {
		checkID, err = gh.CreateCheckRun(ctx, p.RepoFullName, github.NewCheckRun{
			Name: CheckDeploy, HeadSHA: d.SHA, ExternalID: jobID(d.ID), DetailsURL: o.deploymentURL(d), Status: "in_progress", Title: title, Summary: summary,
		})
		if err != nil {
			return err
		}
		if err := o.opt.Store.SetDeploymentGitHubIDs(ctx, d.ID, &checkID, nil); err != nil {
			return err
		}
	}
	if err := gh.CompleteCheckRun(ctx, p.RepoFullName, checkID, github.CheckRunResult{
		Conclusion: check, Title: title, Summary: summary, Text: text, Annotations: annotations(problems), Actions: actions,
	}); err != nil {
		return err
	}
	if err := gh.CreateStatus(ctx, p.RepoFullName, d.SHA, github.CommitStatus{
		State: commitState, Context: StatusContext, Description: title, TargetURL: o.deploymentURL(d),
	}); err != nil {
		return err
	}
	if d.GitHubDeploymentID.Valid {
		if err := gh.CreateDeploymentStatus(ctx, p.RepoFullName, d.GitHubDeploymentID.Int64, github.DeploymentStatus{
			State: deployState, Description: title, LogURL: o.deploymentURL(d), AutoInactive: d.Status == store.DeploymentSuccess,
		}); err != nil {
			return err
		}
	}
	return nil
}

// supersededReport explains a deployment that never ran because a newer one replaced it.
func supersededReport(ctx context.Context, st *store.Store, d store.Deployment) (title, summary, text string) {
	by := "a newer deployment"
	if d.SupersededBy.Valid {
		if nd, err := st.DeploymentByID(ctx, d.SupersededBy.Int64); err == nil {
			by = fmt.Sprintf("`%s` (#%d)", short(nd.SHA), nd.ID)
			title = fmt.Sprintf("Skipped: superseded by %s", short(nd.SHA))
		}
	}
	if title == "" {
		title = "Skipped: superseded by a newer push"
	}
	summary = fmt.Sprintf("Deployment #%d of `%s` was still queued when %s was pushed to the same branch, so only the newer commit is deployed.", d.ID, short(d.SHA), by)
	return title, summary, ""
}

// permanent tells a report failure that no retry can fix from a passing one.
func permanent(err error) bool {
	if errors.Is(err, errInstallationInactive) || errors.Is(err, github.ErrNotFound) {
		return true
	}
	var apiErr *github.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 &&
		apiErr.StatusCode != http.StatusTooManyRequests && !errors.Is(err, github.ErrRateLimited)
}
