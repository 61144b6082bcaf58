package deploy

import (
	"context"
	"fmt"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// CheckSuiteHandler handles "Re-run all checks", which GitHub sends as check_suite rerequested.
type CheckSuiteHandler struct{ o *Orchestrator }

// NewCheckSuiteHandler returns the handler of check_suite webhooks.
func NewCheckSuiteHandler(o *Orchestrator) CheckSuiteHandler { return CheckSuiteHandler{o: o} }

// Handle deploys the suite's commit again to every project that deploys its branch.
func (h CheckSuiteHandler) Handle(ctx context.Context, _ int64, ev webhook.CheckSuite) (string, error) {
	switch ev.Action {
	case "rerequested":
		deployed, why, err := h.o.deployBranch(ctx, ev.Repo, ev.HeadBranch, ev.HeadSHA, "refs/heads/"+ev.HeadBranch, store.TriggerRerunAll, nil)
		if err != nil || why != "" {
			return why, err
		}
		return fmt.Sprintf("re-run all: deploying %s as %s", short(ev.HeadSHA), deployed), nil
	default:
		return fmt.Sprintf("ignored: check_suite %s", ev.Action), nil
	}
}
