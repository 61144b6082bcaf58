package deploy

import (
	"context"
	"fmt"

	"github.com/stagely/stagely/webhook"
)

// PullRequestHandler validates the deploy configuration of pull requests and runs their
// previews.
type PullRequestHandler struct{ o *Orchestrator }

// NewPullRequestHandler returns the handler of pull_request webhooks.
func NewPullRequestHandler(o *Orchestrator) PullRequestHandler { return PullRequestHandler{o: o} }

// Handle checks stagely.yaml and the compose file of a pull request's head whenever the head
// changes, as the `Stagely / validate` check run, and deploys it as the pull request's
// preview on the projects with previews on; closing the pull request stops its previews.
func (h PullRequestHandler) Handle(ctx context.Context, _ int64, ev webhook.PullRequest) (string, error) {
	switch ev.Action {
	case "opened", "synchronize", "reopened":
		decision, err := h.o.Validate(ctx, ev.InstallationID, ev.Repo, ev.HeadSHA)
		if err != nil {
			return "", err
		}
		previews, err := h.o.PreviewPullRequest(ctx, ev)
		return withNote(decision, previews), err
	case "closed":
		return h.o.ClosePullRequest(ctx, ev)
	default:
		return fmt.Sprintf("ignored: pull_request %s", ev.Action), nil
	}
}
