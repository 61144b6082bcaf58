package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// HandlePush deploys a push to a project's deploy branch and says, in one line, what it
// decided: the answer to "why didn't this deploy?". deliveryID is the webhook_deliveries row
// it came from, or 0.
func (o *Orchestrator) HandlePush(ctx context.Context, deliveryID int64, ev webhook.Push) (string, error) {
	var delivery *int64
	if deliveryID != 0 {
		delivery = &deliveryID
	}
	switch {
	case ev.IsTag():
		return fmt.Sprintf("ignored: tag push (%s)", strings.TrimPrefix(ev.Ref, "refs/tags/")), nil
	case ev.IsBranchDeletion():
		return fmt.Sprintf("ignored: branch %s deleted", ev.Branch()), nil
	case ev.Branch() == "":
		return fmt.Sprintf("ignored: push to %s, which is not a branch", ev.Ref), nil
	case ev.Deleted || isZeroSHA(ev.After):
		return "ignored: push without a commit", nil
	}
	projects, err := o.opt.Store.ProjectsForPush(ctx, ev.Repo.ID, ev.Branch())
	if err != nil {
		return "", err
	}
	if len(projects) == 0 {
		return o.whyNoProject(ctx, ev.Repo, ev.Branch())
	}
	var parts []string
	for _, p := range projects {
		d, err := o.Enqueue(ctx, p, ev.After, ev.Ref, store.TriggerPush, delivery)
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("#%d (%s)", d.ID, p.Name))
	}
	return "deployed as " + strings.Join(parts, ", "), nil
}

func (o *Orchestrator) whyNoProject(ctx context.Context, repo webhook.Repo, branch string) (string, error) {
	all, err := o.opt.Store.ProjectsByRepo(ctx, repo.ID)
	if err != nil {
		return "", err
	}
	if len(all) == 0 {
		return fmt.Sprintf("ignored: no Stagely project for %s", repo.FullName), nil
	}
	var inactive, branches []string
	for _, p := range all {
		in, err := o.opt.Store.InstallationByID(ctx, p.InstallationID)
		if err != nil {
			return "", err
		}
		if p.DeployBranch == branch && !in.Active() {
			state := "suspended"
			if in.DeletedAt.Valid {
				state = "uninstalled"
			}
			inactive = append(inactive, fmt.Sprintf("%s (GitHub App %s on %s)", p.Name, state, in.AccountLogin))
		}
		branches = append(branches, fmt.Sprintf("project %s deploys %s", p.Name, p.DeployBranch))
	}
	if len(inactive) > 0 {
		return "ignored: " + strings.Join(inactive, ", "), nil
	}
	return fmt.Sprintf("ignored: push to %s, %s", branch, strings.Join(branches, ", ")), nil
}

func isZeroSHA(sha string) bool { return strings.Trim(sha, "0") == "" }

// HandleCheckRun handles GitHub's "Re-run" (rerequested) and the deploy check run's own
// buttons (requested_action).
func (o *Orchestrator) HandleCheckRun(ctx context.Context, ev webhook.CheckRun) (string, error) {
	switch ev.Action {
	case "rerequested", "requested_action":
	default:
		return fmt.Sprintf("ignored: check_run %s", ev.Action), nil
	}
	if ev.Name == CheckValidate && ev.Action == "rerequested" {
		return o.Validate(ctx, ev.InstallationID, ev.Repo, ev.HeadSHA)
	}
	d, err := o.opt.Store.DeploymentByCheckRunID(ctx, ev.CheckRunID)
	if store.IsNotFound(err) {
		return fmt.Sprintf("ignored: check run %d is not a Stagely deployment", ev.CheckRunID), nil
	}
	if err != nil {
		return "", err
	}
	p, err := o.opt.Store.ProjectByID(ctx, d.ProjectID)
	if err != nil {
		return "", err
	}
	if ev.Action == "rerequested" {
		nd, err := o.Enqueue(ctx, p, d.SHA, d.Ref, store.TriggerRerun, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("re-run of #%d: deploying %s as #%d", d.ID, short(d.SHA), nd.ID), nil
	}
	switch ev.RequestedActionIdentifier {
	case ActionRedeploy:
		nd, err := o.Enqueue(ctx, p, d.SHA, d.Ref, store.TriggerRedeploy, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("redeploy of #%d: deploying %s as #%d", d.ID, short(d.SHA), nd.ID), nil
	case ActionRollback:
		prev, err := o.opt.Store.PreviousGood(ctx, p.ID, d.ID, d.SHA)
		if store.IsNotFound(err) {
			return fmt.Sprintf("ignored: roll back from #%d: no earlier successful deployment of another commit", d.ID), nil
		}
		if err != nil {
			return "", err
		}
		nd, err := o.Enqueue(ctx, p, prev.SHA, prev.Ref, store.TriggerRollback, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("roll back from #%d: deploying %s (last good, #%d) as #%d", d.ID, short(prev.SHA), prev.ID, nd.ID), nil
	default:
		return fmt.Sprintf("ignored: unknown check run action %q", ev.RequestedActionIdentifier), nil
	}
}

// HandleCheckSuite handles "Re-run all checks", which GitHub sends as check_suite rerequested.
func (o *Orchestrator) HandleCheckSuite(ctx context.Context, ev webhook.CheckSuite) (string, error) {
	if ev.Action != "rerequested" {
		return fmt.Sprintf("ignored: check_suite %s", ev.Action), nil
	}
	projects, err := o.opt.Store.ProjectsForPush(ctx, ev.Repo.ID, ev.HeadBranch)
	if err != nil {
		return "", err
	}
	if len(projects) == 0 {
		return o.whyNoProject(ctx, ev.Repo, ev.HeadBranch)
	}
	var parts []string
	for _, p := range projects {
		d, err := o.Enqueue(ctx, p, ev.HeadSHA, "refs/heads/"+ev.HeadBranch, store.TriggerRerunAll, nil)
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("#%d (%s)", d.ID, p.Name))
	}
	return fmt.Sprintf("re-run all: deploying %s as %s", short(ev.HeadSHA), strings.Join(parts, ", ")), nil
}

// HandlePullRequest validates stagely.yaml and the compose file of a pull request's head.
func (o *Orchestrator) HandlePullRequest(ctx context.Context, ev webhook.PullRequest) (string, error) {
	switch ev.Action {
	case "opened", "synchronize", "reopened":
	default:
		return fmt.Sprintf("ignored: pull_request %s", ev.Action), nil
	}
	return o.Validate(ctx, ev.InstallationID, ev.Repo, ev.HeadSHA)
}

// HandleInstallation keeps the installations table true.
func (o *Orchestrator) HandleInstallation(ctx context.Context, ev webhook.Installation) (string, error) {
	st := o.opt.Store
	rec := store.Installation{GitHubID: ev.ID, AccountLogin: ev.AccountLogin, AccountID: ev.AccountID, AccountType: accountType(ev.AccountType)}
	switch ev.Action {
	case "created", "new_permissions_accepted", "unsuspend":
		if _, err := st.UpsertInstallation(ctx, rec); err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s %s", ev.ID, ev.AccountLogin, pastTense(ev.Action)), nil
	case "suspend":
		at := ev.SuspendedAt
		if at.IsZero() {
			at = o.opt.Now()
		}
		rec.SuspendedAt.Time, rec.SuspendedAt.Valid = at, true
		if _, err := st.UpsertInstallation(ctx, rec); err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s suspended: its projects deploy nothing until it is unsuspended", ev.ID, ev.AccountLogin), nil
	case "deleted":
		err := st.MarkInstallationDeleted(ctx, ev.ID, o.opt.Now())
		if store.IsNotFound(err) {
			return fmt.Sprintf("installation %d deleted (it was not known here)", ev.ID), nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s deleted: its projects deploy nothing", ev.ID, ev.AccountLogin), nil
	default:
		return fmt.Sprintf("ignored: installation %s", ev.Action), nil
	}
}

// HandleInstallationRepositories notes repositories added to or removed from an installation.
func (o *Orchestrator) HandleInstallationRepositories(ctx context.Context, ev webhook.InstallationRepositories) (string, error) {
	var removed []string
	for _, r := range ev.Removed {
		ps, err := o.opt.Store.ProjectsByRepo(ctx, r.ID)
		if err != nil {
			return "", err
		}
		for _, p := range ps {
			removed = append(removed, fmt.Sprintf("%s (project %s can no longer deploy)", r.FullName, p.Name))
		}
	}
	msg := fmt.Sprintf("installation %d: %d repositories added, %d removed", ev.InstallationID, len(ev.Added), len(ev.Removed))
	if len(removed) > 0 {
		msg += ": " + strings.Join(removed, ", ")
	}
	return msg, nil
}

func accountType(t string) string {
	switch t {
	case "Organization", "Enterprise":
		return t
	default:
		return "User"
	}
}

func pastTense(action string) string {
	switch action {
	case "created":
		return "recorded"
	case "unsuspend":
		return "unsuspended"
	default:
		return "updated (" + action + ")"
	}
}
