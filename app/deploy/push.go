package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagely/stagely/app/ctxsleep"
	"github.com/stagely/stagely/app/github"
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
	projects, why, err := h.o.projectsFor(ctx, ev.Repo, ev.Branch())
	if err != nil || why != "" {
		return why, err
	}
	projects, unwatched, err := h.o.watching(ctx, projects, ev)
	if err != nil || len(projects) == 0 {
		return unwatched, err
	}
	decision, err := h.deploy(ctx, projects, ev, delivery)
	return withNote(decision, strings.TrimPrefix(unwatched, "ignored: ")), err
}

// deploy queues the push for projects, unless it is late or stale.
func (h PushHandler) deploy(ctx context.Context, projects []store.Project, ev webhook.Push, delivery *int64) (string, error) {
	// A push GitHub first sent before one already queued or deployed (recovered after an
	// outage) is recorded superseded; the stale check below is for the rest, such as a push
	// replayed under a new delivery id, which this server sees as new.
	projects, superseded, err := h.o.supersedeLate(ctx, projects, ev.After, ev.Ref, store.TriggerPush, delivery)
	if err != nil || len(projects) == 0 {
		return superseded, err
	}
	if stale, err := h.o.stalePush(ctx, projects, ev); err != nil || stale != "" {
		return withNote(stale, superseded), err
	}
	deployed, err := h.o.enqueueAll(ctx, projects, ev.After, ev.Ref, store.TriggerPush, delivery)
	if err != nil {
		return "", err
	}
	return withNote("deployed as "+deployed, superseded), nil
}

// deployBranch queues sha for every project of repo that deploys branch, and lists the new
// deployments: "#12 (web), #13 (api)". When no project deploys the branch it queues nothing
// and says why instead: "ignored: …"; a push older than one already queued or deployed is
// recorded superseded instead (supersedeLatePush), and says so.
func (o *Orchestrator) deployBranch(ctx context.Context, repo webhook.Repo, branch, sha, ref, trigger string, delivery *int64) (deployed, why string, err error) {
	projects, why, err := o.projectsFor(ctx, repo, branch)
	if err != nil || why != "" {
		return "", why, err
	}
	projects, superseded, err := o.supersedeLate(ctx, projects, sha, ref, trigger, delivery)
	if err != nil || len(projects) == 0 {
		return "", superseded, err
	}
	deployed, err = o.enqueueAll(ctx, projects, sha, ref, trigger, delivery)
	return withNote(deployed, superseded), "", err
}

// supersedeLate records sha superseded on each project that has a newer push queued or
// deployed already (supersedeLatePush), returns the other projects, and notes the first
// ones: "superseded: …".
func (o *Orchestrator) supersedeLate(ctx context.Context, projects []store.Project, sha, ref, trigger string, delivery *int64) ([]store.Project, string, error) {
	var rest []store.Project
	var late []string
	for _, p := range projects {
		note, err := o.supersedeLatePush(ctx, p, sha, ref, trigger, delivery)
		if err != nil {
			return nil, "", err
		}
		if note != "" {
			late = append(late, note)
			continue
		}
		rest = append(rest, p)
	}
	if len(late) == 0 {
		return rest, "", nil
	}
	return rest, "superseded: " + strings.Join(late, ", "), nil
}

// withNote appends note to a decision: "deployed as #12 (web); superseded: …".
func withNote(decision, note string) string {
	if note == "" {
		return decision
	}
	return decision + "; " + note
}

// projectsFor lists the projects that deploy branch of repo, or says why none does.
func (o *Orchestrator) projectsFor(ctx context.Context, repo webhook.Repo, branch string) ([]store.Project, string, error) {
	projects, err := o.opt.Store.ProjectsForPush(ctx, repo.ID, branch)
	if err != nil {
		return nil, "", err
	}
	if len(projects) == 0 {
		why, err := o.whyNoProject(ctx, repo, branch)
		return nil, why, err
	}
	return projects, "", nil
}

// enqueueAll queues sha for each project and lists the new deployments.
func (o *Orchestrator) enqueueAll(ctx context.Context, projects []store.Project, sha, ref, trigger string, delivery *int64) (string, error) {
	var parts []string
	for _, p := range projects {
		d, err := o.Enqueue(ctx, p, sha, ref, trigger, delivery)
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("#%d (%s)", d.ID, p.Name))
	}
	return strings.Join(parts, ", "), nil
}

// maxHeadRechecks is how often a branch head found behind the pushed commit is read again.
const maxHeadRechecks = 3

// stalePush says why a push must not deploy, "ignored: stale push, main is at abc1234", when
// its commit is no longer the branch's head on GitHub: a newer push moved the branch on
// (GitHub can deliver two pushes out of order) or this is an old push sent again under a new
// delivery id. Deploying it would roll production back. A head that is behind the pushed commit
// is what GitHub's ref API shows for a moment right after a push, so it is read again a few
// times (0.5 s, 1 s, 2 s); a head that stays behind means the branch was forced back since.
// A head ahead of the pushed commit is a newer push still on its way, as when two pushes come
// quickly, if no project has a deployment of either commit yet: this one is queued, and the
// newer one supersedes it when it arrives (staleBehindHead).
func (o *Orchestrator) stalePush(ctx context.Context, projects []store.Project, ev webhook.Push) (string, error) {
	in, err := o.opt.Store.InstallationByID(ctx, projects[0].InstallationID)
	if err != nil {
		return "", err
	}
	if !in.Active() {
		// GitHub cannot be asked; the deployment fails at dispatch and says why.
		return "", nil
	}
	gh := o.opt.GitHub(in.GitHubID)
	repo, branch := ev.Repo.FullName, ev.Branch()
	for attempt := 0; ; attempt++ {
		head, err := gh.BranchHead(ctx, repo, branch)
		if errors.Is(err, github.ErrNotFound) {
			return fmt.Sprintf("ignored: stale push, branch %s no longer exists", branch), nil
		}
		if err != nil {
			return "", fmt.Errorf("read the head of %s on GitHub: %w", branch, err)
		}
		if head == ev.After {
			return "", nil
		}
		stale := fmt.Sprintf("ignored: stale push, %s is at %s", branch, short(head))
		// Where the head stands from the pushed commit.
		where, err := gh.Compare(ctx, repo, ev.After, head)
		switch {
		case errors.Is(err, github.ErrNotFound):
			return stale, nil // GitHub no longer has the pushed commit in this history
		case err != nil:
			return "", fmt.Errorf("compare %s with the head of %s on GitHub: %w", short(ev.After), branch, err)
		case where == github.CompareIdentical:
			return "", nil
		case where == github.CompareAhead:
			return o.staleBehindHead(ctx, projects, ev.After, head, stale)
		case where != github.CompareBehind || attempt == maxHeadRechecks:
			return stale, nil
		}
		if err := ctxsleep.Sleep(ctx, 500*time.Millisecond<<attempt); err != nil {
			return "", err
		}
	}
}

// staleBehindHead decides a push of sha that the branch head has moved past: stale when a
// project has a deployment of head already, or of sha itself. Of two quick pushes the older is
// handled before either commit has a deployment, so it is queued and the newer supersedes it;
// a pushed commit that was deployed before is an old push sent again (a replay under a new
// delivery id) and must not roll back, even when the head's own push never got a deployment
// (lost, or made before the project was linked).
func (o *Orchestrator) staleBehindHead(ctx context.Context, projects []store.Project, sha, head, stale string) (string, error) {
	for _, c := range []string{head, sha} {
		seen, err := o.deployedAny(ctx, projects, c)
		if err != nil {
			return "", err
		}
		if seen {
			return stale, nil
		}
	}
	return "", nil
}

// deployedAny says whether one of projects has a deployment of sha.
func (o *Orchestrator) deployedAny(ctx context.Context, projects []store.Project, sha string) (bool, error) {
	for _, p := range projects {
		if ok, err := o.opt.Store.HasDeploymentOf(ctx, p.ID, sha); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
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
