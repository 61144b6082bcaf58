package deploy

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// Stop reasons a preview keeps (previews.stop_reason).
const (
	stopClosed = "the pull request was closed"
	stopIdle   = "no push for longer than stagely.yaml's preview.stop_after"
	// teardownFailed follows the reason a failed teardown was for; the sweep tries it again.
	teardownFailed = " — the teardown failed, tried again shortly: "
)

// Failed teardowns are tried again after teardownRetry, doubling with each failure up to
// teardownRetryMax: the containers of a closed pull request run until one succeeds.
const (
	teardownRetry    = time.Minute
	teardownRetryMax = time.Hour
)

// previewProjects are the projects of repo with previews on, under an active installation.
func (o *Orchestrator) previewProjects(ctx context.Context, repo webhook.Repo) ([]store.Project, error) {
	all, err := o.opt.Store.ProjectsByRepo(ctx, repo.ID)
	if err != nil {
		return nil, err
	}
	var out []store.Project
	for _, p := range all {
		if !p.PreviewsEnabled {
			continue
		}
		in, err := o.opt.Store.InstallationByID(ctx, p.InstallationID)
		if err != nil {
			return nil, err
		}
		if in.Active() {
			out = append(out, p)
		}
	}
	return out, nil
}

// PreviewPullRequest deploys the head of an opened, reopened or pushed-to pull request as
// its preview on every project of the repository with previews on, and says what it did:
// "preview of #7 queued as #31 (shop)". A pull request from a fork, or by a user without
// write access, waits for one with write access to press "Deploy preview".
func (o *Orchestrator) PreviewPullRequest(ctx context.Context, ev webhook.PullRequest) (string, error) {
	projects, err := o.previewProjects(ctx, ev.Repo)
	if err != nil || len(projects) == 0 {
		return "", err
	}
	var notes []string
	for _, p := range projects {
		note, err := o.previewHead(ctx, p, ev)
		if err != nil {
			return "", err
		}
		notes = append(notes, note)
	}
	return strings.Join(notes, ", "), nil
}

// previewHead records the pull request's new head on p's preview and deploys it when the
// head may be trusted. GitHub, not the event, says whether the pull request is still open
// at that head: a delivery redelivered or processed late (an `opened` after its `closed`, a
// `synchronize` after a newer one) is ignored rather than redeploy a closed pull request or
// roll its preview back.
func (o *Orchestrator) previewHead(ctx context.Context, p store.Project, ev webhook.PullRequest) (string, error) {
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return "", err
	}
	pr, err := gh.PullRequest(ctx, p.RepoFullName, ev.Number)
	switch {
	case err != nil:
		return "", fmt.Errorf("read pull request #%d on GitHub: %w", ev.Number, err)
	case !pr.Open:
		return fmt.Sprintf("ignored: pull request #%d is closed on GitHub (a stale %s event)", ev.Number, ev.Action), nil
	case pr.HeadSHA != ev.HeadSHA:
		return fmt.Sprintf("ignored: pull request #%d's head is %s on GitHub, not %s (a stale %s event)", ev.Number, short(pr.HeadSHA), short(ev.HeadSHA), ev.Action), nil
	}
	pv, err := o.opt.Store.RecordPreviewHead(ctx, store.PreviewHead{
		ProjectID: p.ID, PRNumber: ev.Number, HeadSHA: ev.HeadSHA, HeadRef: ev.HeadRef,
		HeadRepoFullName: ev.HeadRepoFullName, AuthorLogin: prAuthor(ev),
	}, store.PreviewQueued)
	if err != nil {
		return "", fmt.Errorf("record the preview of pull request #%d: %w", ev.Number, err)
	}
	trusted, why, err := o.trustedHead(ctx, p, pv, ev)
	if err != nil {
		return "", err
	}
	if !trusted {
		return o.awaitApproval(ctx, p, pv, why)
	}
	return o.deployPreview(ctx, p, pv)
}

// deployPreview queues a deploy of the preview's head; it supersedes the preview's own
// queued deploy only.
func (o *Orchestrator) deployPreview(ctx context.Context, p store.Project, pv store.Preview) (string, error) {
	if pv.State == store.PreviewStopped || pv.State == store.PreviewAwaitingApproval {
		if err := o.opt.Store.SetPreviewState(ctx, pv.ID, store.PreviewQueued, ""); err != nil {
			return "", err
		}
	}
	d, err := o.enqueue(ctx, p, store.NewDeployment{
		SHA: pv.HeadSHA, Ref: "refs/pull/" + fmt.Sprint(pv.PRNumber) + "/head", Trigger: store.TriggerPreview, Environment: pv.Environment(),
	})
	if err != nil {
		return "", err
	}
	o.previewChanged(ctx, p, pv.PRNumber)
	return fmt.Sprintf("preview of #%d queued as #%d (%s)", pv.PRNumber, d.ID, p.Name), nil
}

// trustedHead says whether the preview's head may deploy without anyone's approval: the
// pull request comes from the repository itself and its author has write access, or a user
// with write access approved this very commit. why says what is missing.
func (o *Orchestrator) trustedHead(ctx context.Context, p store.Project, pv store.Preview, ev webhook.PullRequest) (bool, string, error) {
	if pv.ApprovedSHA == pv.HeadSHA {
		return true, "", nil
	}
	if ev.FromFork() {
		return false, fmt.Sprintf("it comes from the fork %s", cmp.Or(ev.HeadRepoFullName, "(deleted)")), nil
	}
	author := prAuthor(ev)
	gh, err := o.githubFor(ctx, p)
	if err != nil {
		return false, "", err
	}
	ok, err := gh.HasWriteAccess(ctx, p.RepoFullName, author)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("ask GitHub for %s's access to %s: %w", author, p.RepoFullName, err)
	case !ok:
		return false, fmt.Sprintf("its author %s has no write access to %s", author, p.RepoFullName), nil
	}
	return true, "", nil
}

// ClosePullRequest stops the previews of a closed pull request (merged or not).
func (o *Orchestrator) ClosePullRequest(ctx context.Context, ev webhook.PullRequest) (string, error) {
	projects, err := o.opt.Store.ProjectsByRepo(ctx, ev.Repo.ID)
	if err != nil {
		return "", err
	}
	var notes []string
	for _, p := range projects {
		pv, err := o.opt.Store.PreviewByNumber(ctx, p.ID, ev.Number)
		if store.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		note, err := o.stopPreview(ctx, p, pv, stopClosed)
		if err != nil {
			return "", err
		}
		notes = append(notes, note)
	}
	if len(notes) == 0 {
		return "ignored: pull_request closed", nil
	}
	return strings.Join(notes, ", "), nil
}

// stopPreview tears the preview down: a preview that never ran on an agent (waiting for
// approval or for a slot) just stops; one that did gets a teardown job on the same agent.
func (o *Orchestrator) stopPreview(ctx context.Context, p store.Project, pv store.Preview, reason string) (string, error) {
	st := o.opt.Store
	switch pv.State {
	case store.PreviewStopped, store.PreviewStopping:
		return fmt.Sprintf("preview of #%d (%s) is already %s", pv.PRNumber, p.Name, pv.State), nil
	}
	cancelled, err := st.CancelQueued(ctx, p.ID, pv.Environment(), "cancelled: "+reason, o.opt.Now())
	if err != nil {
		return "", err
	}
	for _, d := range cancelled {
		o.observe(d)
		o.reportFinal(ctx, p, d, nil)
	}
	if !pv.AgentID.Valid {
		if err := st.SetPreviewState(ctx, pv.ID, store.PreviewStopped, reason); err != nil {
			return "", err
		}
		o.previewChanged(ctx, p, pv.PRNumber)
		return fmt.Sprintf("preview of #%d (%s) stopped; it never ran", pv.PRNumber, p.Name), nil
	}
	if err := st.SetPreviewState(ctx, pv.ID, store.PreviewStopping, reason); err != nil {
		return "", err
	}
	d, err := o.enqueue(ctx, p, store.NewDeployment{
		SHA: pv.HeadSHA, Ref: "refs/pull/" + fmt.Sprint(pv.PRNumber) + "/head", Trigger: store.TriggerPreviewStop, Environment: pv.Environment(),
	})
	if err != nil {
		return "", err
	}
	o.previewChanged(ctx, p, pv.PRNumber)
	return fmt.Sprintf("preview of #%d stopping as #%d (%s)", pv.PRNumber, d.ID, p.Name), nil
}

// previewFinished moves the preview of d, which finished, to its next state and tells the
// pull request.
func (o *Orchestrator) previewFinished(ctx context.Context, p store.Project, d store.Deployment) {
	if err := o.settlePreview(ctx, p, d); err != nil {
		o.log.Error("record the end of a preview's deployment", "deployment", d.ID, "err", err)
		return
	}
	o.previewChanged(ctx, p, store.PreviewNumber(d.Environment))
}

func (o *Orchestrator) settlePreview(ctx context.Context, p store.Project, d store.Deployment) error {
	st := o.opt.Store
	pv, err := st.PreviewByNumber(ctx, p.ID, store.PreviewNumber(d.Environment))
	if err != nil {
		return err
	}
	switch {
	case d.Status == store.DeploymentSuperseded || d.Status == store.DeploymentCancelled:
		return nil // a newer deploy or the teardown took its place
	case d.Trigger == store.TriggerPreviewStop && d.Status == store.DeploymentSuccess:
		return st.SetPreviewState(ctx, pv.ID, store.PreviewStopped, pv.StopReason)
	case d.Trigger == store.TriggerPreviewStop:
		reason, _, _ := strings.Cut(pv.StopReason, teardownFailed)
		_, err := st.TeardownFailed(ctx, pv, reason+teardownFailed+d.Error, func(failures int) time.Time {
			return o.opt.Now().Add(min(teardownRetry<<min(failures-1, 10), teardownRetryMax))
		})
		return err
	case pv.State == store.PreviewStopped:
		return nil // stopped while it deployed
	}
	if pv.State == store.PreviewStopping {
		// Closed while it deployed: the teardown follows, if there really is one still to run.
		pending, err := st.TeardownPending(ctx, p.ID, pv.Environment())
		if err != nil || pending {
			return err
		}
	}
	switch {
	case d.Status == store.DeploymentSuccess:
		return st.SetPreviewState(ctx, pv.ID, store.PreviewLive, "")
	default:
		return st.SetPreviewState(ctx, pv.ID, store.PreviewFailed, "")
	}
}

// StopIdlePreviews stops the previews that have had no push for longer than their
// stagely.yaml's preview.stop_after, and tries again the teardowns that failed once their
// retry is due.
func (o *Orchestrator) StopIdlePreviews(ctx context.Context) {
	due, err := o.opt.Store.PreviewsToStop(ctx, o.opt.Now())
	if err != nil {
		o.log.Error("sweep: idle previews", "err", err)
		return
	}
	for _, pv := range due {
		p, err := o.opt.Store.ProjectByID(ctx, pv.ProjectID)
		if err == nil {
			reason := stopIdle
			if before, _, retry := strings.Cut(pv.StopReason, teardownFailed); retry {
				reason = before
			}
			_, err = o.stopPreview(ctx, p, pv, reason)
		}
		if err != nil {
			o.log.Error("sweep: stop an idle preview", "preview", pv.ID, "err", err)
			continue
		}
		o.log.Info("idle preview stopped", "project", p.Name, "pull_request", pv.PRNumber)
	}
}

// prAuthor is who opened the pull request; older deliveries without it name the sender.
func prAuthor(ev webhook.PullRequest) string { return cmp.Or(ev.AuthorLogin, ev.SenderLogin) }
