package deploy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/webhook"
)

// handler is what the intake worker calls.
type handler interface {
	Handles() string
	Handle(ctx context.Context, deliveryID int64, ev webhook.Event) (string, error)
}

// TestHandlers_DecideEveryActionInOneLine walks one project through the webhooks its users
// cause after a push: Re-run, the deploy check run's buttons, Re-run all, pull requests.
func TestHandlers_DecideEveryActionInOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	e.hub.setIdle(a.ID, true)
	p, good := e.project(&a)
	e.push(p, good)
	e.run(a, p, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	bad := e.commit(p, "bad")
	e.hub.setIdle(a.ID, true)
	e.push(p, bad)
	e.run(a, p, time.Second, protocol.JobResult{Status: protocol.StatusFailure})
	goodRun, badRun := e.checkRun(p, good).ID, e.checkRun(p, bad).ID
	repo := webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}
	checkRun := func(action, button string, id int64) webhook.CheckRun {
		return webhook.CheckRun{Action: action, RequestedActionIdentifier: button, CheckRunID: id, Name: deploy.CheckDeploy,
			HeadSHA: good, Repo: repo, InstallationID: e.instGH}
	}
	pr := func(action, sha string) webhook.PullRequest {
		return webhook.PullRequest{Action: action, Number: 7, HeadSHA: sha, Repo: repo, InstallationID: e.instGH}
	}
	suite := func(action, branch string) webhook.CheckSuite {
		return webhook.CheckSuite{Action: action, HeadSHA: bad, HeadBranch: branch, Repo: repo, InstallationID: e.instGH}
	}
	runs, suites, prs := deploy.NewCheckRunHandler(e.orch), deploy.NewCheckSuiteHandler(e.orch), deploy.NewPullRequestHandler(e.orch)
	steps := []struct {
		h    handler
		ev   webhook.Event
		want string
	}{
		{runs, checkRun("created", "", goodRun), "ignored: check_run created"},
		{runs, checkRun("rerequested", "", 999), "ignored: check run 999 is not a Stagely deployment"},
		{runs, checkRun("requested_action", "deploy-everything", 999), "ignored: check run 999 is not a Stagely deployment"},
		{runs, checkRun("requested_action", "deploy-everything", goodRun), `ignored: unknown check run action "deploy-everything"`},
		{runs, checkRun("requested_action", deploy.ActionRollback, goodRun), "ignored: roll back from #1: no earlier successful deployment of another commit"},
		{runs, checkRun("requested_action", deploy.ActionRollback, badRun), fmt.Sprintf("roll back from #2: deploying %s (last good, #1) as #3", good[:7])},
		{runs, checkRun("requested_action", deploy.ActionRedeploy, goodRun), fmt.Sprintf("redeploy of #1: deploying %s as #4", good[:7])},
		{runs, checkRun("rerequested", "", badRun), fmt.Sprintf("re-run of #2: deploying %s as #5", bad[:7])},
		{runs, webhook.CheckRun{Action: "rerequested", CheckRunID: 998, Name: deploy.CheckValidate, HeadSHA: good, Repo: repo, InstallationID: e.instGH},
			fmt.Sprintf("validated %s: Configuration is valid", good[:7])},
		{suites, suite("requested", "main"), "ignored: check_suite requested"},
		{suites, suite("rerequested", "dev"), "ignored: push to dev, project " + p.Name + " deploys main"},
		{suites, suite("rerequested", "main"), fmt.Sprintf("re-run all: deploying %s as #6 (%s)", bad[:7], p.Name)},
		{prs, pr("closed", good), "ignored: pull_request closed"},
		{prs, pr("opened", good), fmt.Sprintf("validated %s: Configuration is valid", good[:7])},
		{prs, pr("synchronize", bad), fmt.Sprintf("validated %s: Configuration is valid", bad[:7])},
	}
	for _, s := range steps {
		got, err := s.h.Handle(e.ctx, 0, s.ev)
		if err != nil || got != s.want {
			t.Fatalf("%s %+v:\n decided %q, %v\n want    %q", s.h.Handles(), s.ev, got, err, s.want)
		}
	}
}

func TestHandlers_RefuseAnotherEvent(t *testing.T) {
	t.Parallel()
	for _, h := range []handler{deploy.NewPushHandler(nil), deploy.NewPullRequestHandler(nil), deploy.NewCheckRunHandler(nil), deploy.NewCheckSuiteHandler(nil)} {
		if _, err := h.Handle(context.Background(), 0, webhook.Ping{}); err == nil || !strings.Contains(err.Error(), "ping") {
			t.Errorf("%s handler given a ping: %v", h.Handles(), err)
		}
	}
}
