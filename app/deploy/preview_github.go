package deploy

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// ActionDeployPreview is the identifier of the "Deploy preview" button on the check run of
// a pull request that waits for approval.
const ActionDeployPreview = "deploy_preview"

// approvalExternalID names the preview on its approval check run, as GitHub does not list a
// fork's pull request on its check runs: "preview:<project id>:<pull request number>".
func approvalExternalID(p store.Project, number int) string {
	return fmt.Sprintf("preview:%d:%d", p.ID, number)
}

// parseApprovalExternalID reads approvalExternalID; ok is false for any other id.
func parseApprovalExternalID(id string) (projectID int64, number int, ok bool) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 || parts[0] != "preview" {
		return 0, 0, false
	}
	projectID, err1 := strconv.ParseInt(parts[1], 10, 64)
	number, err2 := strconv.Atoi(parts[2])
	return projectID, number, err1 == nil && err2 == nil && number > 0
}

// awaitApproval parks the preview until a user with write access presses "Deploy preview"
// on its check run, which says why it waits.
func (o *Orchestrator) awaitApproval(ctx context.Context, p store.Project, pv store.Preview, why string) (string, error) {
	st := o.opt.Store
	cancelled, err := st.CancelQueued(ctx, p.ID, pv.Environment(), "cancelled: a newer commit needs approval", o.opt.Now())
	if err != nil {
		return "", err
	}
	for _, d := range cancelled {
		o.observe(d)
		o.reportFinal(ctx, p, d, nil)
	}
	switch pv.State {
	case store.PreviewLive, store.PreviewFailed, store.PreviewDeploying, store.PreviewStopping:
		// A running preview keeps serving its approved commit until the new one is approved;
		// a stopping one is torn down first (its queued teardown is never cancelled).
	default:
		if err := st.SetPreviewState(ctx, pv.ID, store.PreviewAwaitingApproval, ""); err != nil {
			return "", err
		}
	}
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return "", err
	}
	summary := fmt.Sprintf("Pull request #%d is not deployed as a preview on its own: %s. "+
		"A user with write access to %s can deploy `%s` by pressing **Deploy preview** above, after reading its changes: "+
		"the preview runs its code, and its compose file, on the agent's server. A later push needs approval again.",
		pv.PRNumber, why, p.RepoFullName, short(pv.HeadSHA))
	id, err := gh.CreateCheckRun(ctx, p.RepoFullName, github.NewCheckRun{
		Name: CheckName(CheckPreview, p), HeadSHA: pv.HeadSHA, ExternalID: approvalExternalID(p, pv.PRNumber),
		Status: "in_progress", Title: "Waiting for approval", Summary: summary,
	})
	if err == nil {
		err = gh.CompleteCheckRun(ctx, p.RepoFullName, id, github.CheckRunResult{
			Conclusion: "action_required", Title: "Waiting for approval to deploy a preview", Summary: summary,
			Actions: []github.Action{{Label: "Deploy preview", Description: "Deploy this pull request's head", Identifier: ActionDeployPreview}},
		})
	}
	if err != nil {
		return "", fmt.Errorf("ask for approval of pull request #%d's preview on GitHub: %w", pv.PRNumber, err)
	}
	o.previewChanged(ctx, p, pv.PRNumber)
	return fmt.Sprintf("preview of #%d (%s) awaits approval: %s", pv.PRNumber, p.Name, why), nil
}

// approvePreview handles "Deploy preview": a user with write access (asked of GitHub, not
// taken from the event) approves the head SHA the check run is on, which then deploys.
func (o *Orchestrator) approvePreview(ctx context.Context, ev webhook.CheckRun) (string, error) {
	projectID, number, ok := parseApprovalExternalID(ev.ExternalID)
	if !ok {
		return fmt.Sprintf("ignored: check run %d is not a preview waiting for approval", ev.CheckRunID), nil
	}
	st := o.opt.Store
	p, err := st.ProjectByID(ctx, projectID)
	if store.IsNotFound(err) || (err == nil && p.RepoID != ev.Repo.ID) {
		return fmt.Sprintf("ignored: check run %d names no preview of %s", ev.CheckRunID, ev.Repo.FullName), nil
	}
	if err != nil {
		return "", err
	}
	pv, err := st.PreviewByNumber(ctx, p.ID, number)
	if err != nil {
		return "", err
	}
	// A stopped or stopping preview may be approved too (it was idle, or its teardown has
	// not run yet): GitHub below says whether its pull request is still open.
	if pv.HeadSHA != ev.HeadSHA {
		return fmt.Sprintf("ignored: pull request #%d has moved on to %s, whose own check run asks for approval", number, short(pv.HeadSHA)), nil
	}
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return "", err
	}
	// GitHub, not this server's record, says whether the pull request is still open at the
	// commit the button was pressed on: a webhook of a push or a close may be on its way.
	pr, err := gh.PullRequest(ctx, p.RepoFullName, number)
	switch {
	case err != nil:
		return "", fmt.Errorf("read pull request #%d on GitHub: %w", number, err)
	case !pr.Open:
		return fmt.Sprintf("ignored: pull request #%d is closed", number), nil
	case pr.HeadSHA != ev.HeadSHA:
		return fmt.Sprintf("ignored: pull request #%d has moved on to %s, whose own check run asks for approval", number, short(pr.HeadSHA)), nil
	}
	canPush, err := gh.HasWriteAccess(ctx, p.RepoFullName, ev.SenderLogin)
	if err != nil {
		return "", fmt.Errorf("ask GitHub for %s's access to %s: %w", ev.SenderLogin, p.RepoFullName, err)
	}
	if !canPush {
		return fmt.Sprintf("refused: %s pressed Deploy preview on #%d without write access to %s", ev.SenderLogin, number, p.RepoFullName), nil
	}
	if err := st.ApprovePreview(ctx, pv.ID, pv.HeadSHA, ev.SenderLogin); err != nil {
		return "", err
	}
	pv.ApprovedSHA, pv.ApprovedBy = pv.HeadSHA, ev.SenderLogin
	note := fmt.Sprintf("Approved by %s: `%s` is deployed as the preview of pull request #%d.", ev.SenderLogin, short(pv.HeadSHA), number)
	if err := gh.CompleteCheckRun(ctx, p.RepoFullName, ev.CheckRunID, github.CheckRunResult{
		Conclusion: "success", Title: "Approved by " + ev.SenderLogin, Summary: note,
	}); err != nil {
		o.log.Warn("mark a preview's approval check run approved", "pull_request", number, "err", err)
	}
	out, err := o.deployPreview(ctx, p, pv)
	return fmt.Sprintf("approved by %s: %s", ev.SenderLogin, out), err
}

// previewChanged tells GitHub what became of the preview: a live preview's GitHub deployment
// replaces the one before it (marked inactive, which GitHub does not do for transient
// environments), and a stopped preview's is marked inactive.
func (o *Orchestrator) previewChanged(ctx context.Context, p store.Project, number int) {
	if err := o.reportPreview(ctx, p, number); err != nil {
		o.log.Warn("report a preview to GitHub", "project", p.Name, "pull_request", number, "err", err)
	}
}

func (o *Orchestrator) reportPreview(ctx context.Context, p store.Project, number int) error {
	st := o.opt.Store
	pv, err := st.PreviewByNumber(ctx, p.ID, number)
	if err != nil {
		return err
	}
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return err
	}
	if err := o.writeComment(ctx, gh, p, pv); err != nil {
		o.log.Warn("write a preview's pull request comment", "project", p.Name, "pull_request", number, "err", err)
	}
	inactive := github.DeploymentStatus{State: "inactive", Description: "The preview of pull request #" + fmt.Sprint(number) + " stopped"}
	switch pv.State {
	case store.PreviewLive:
		d, err := st.LastSuccessful(ctx, p.ID, pv.Environment(), 0)
		if err != nil || !d.GitHubDeploymentID.Valid || d.GitHubDeploymentID == pv.GitHubDeploymentID {
			return err
		}
		if pv.GitHubDeploymentID.Valid {
			inactive.Description = "Replaced by the preview of " + short(d.SHA)
			if err := gh.CreateDeploymentStatus(ctx, p.RepoFullName, pv.GitHubDeploymentID.Int64, inactive); err != nil {
				return err
			}
		}
		return st.SetPreviewGitHub(ctx, pv.ID, nil, &d.GitHubDeploymentID.Int64)
	case store.PreviewStopped:
		if !pv.GitHubDeploymentID.Valid {
			return nil
		}
		return gh.CreateDeploymentStatus(ctx, p.RepoFullName, pv.GitHubDeploymentID.Int64, inactive)
	}
	return nil
}
