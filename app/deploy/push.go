package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// PushHandler deploys a push to a project's deploy branch.
type PushHandler struct{ o *Orchestrator }

// NewPushHandler returns the handler of push webhooks.
func NewPushHandler(o *Orchestrator) PushHandler { return PushHandler{o: o} }

// Handle deploys the pushed commit to every project that deploys the pushed branch and says,
// in one line, what it decided: the answer to "why didn't this deploy?". deliveryID is the
// webhook_deliveries row the push came in as, or 0.
func (h PushHandler) Handle(ctx context.Context, deliveryID int64, ev webhook.Push) (string, error) {
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
	var delivery *int64
	if deliveryID != 0 {
		delivery = &deliveryID
	}
	deployed, why, err := h.o.deployBranch(ctx, ev.Repo, ev.Branch(), ev.After, ev.Ref, store.TriggerPush, delivery)
	if err != nil || why != "" {
		return why, err
	}
	return "deployed as " + deployed, nil
}

// deployBranch queues sha for every project of repo that deploys branch, and lists the new
// deployments: "#12 (web), #13 (api)". When no project deploys the branch it queues nothing
// and says why instead: "ignored: …"; a push older than one already queued or deployed is
// recorded superseded instead (supersedeLatePush), and says so.
func (o *Orchestrator) deployBranch(ctx context.Context, repo webhook.Repo, branch, sha, ref, trigger string, delivery *int64) (deployed, why string, err error) {
	projects, err := o.opt.Store.ProjectsForPush(ctx, repo.ID, branch)
	if err != nil {
		return "", "", err
	}
	if len(projects) == 0 {
		why, err := o.whyNoProject(ctx, repo, branch)
		return "", why, err
	}
	var parts, late []string
	for _, p := range projects {
		if note, err := o.supersedeLatePush(ctx, p, sha, ref, trigger, delivery); err != nil || note != "" {
			if err != nil {
				return "", "", err
			}
			late = append(late, note)
			continue
		}
		d, err := o.Enqueue(ctx, p, sha, ref, trigger, delivery)
		if err != nil {
			return "", "", err
		}
		parts = append(parts, fmt.Sprintf("#%d (%s)", d.ID, p.Name))
	}
	if len(late) > 0 {
		superseded := "superseded: " + strings.Join(late, ", ")
		if len(parts) == 0 {
			return "", superseded, nil
		}
		parts[len(parts)-1] += "; " + superseded
	}
	return strings.Join(parts, ", "), "", nil
}

// whyNoProject explains why no project deploys a push to branch of repo.
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
