package webhook

import "github.com/google/go-github/v60/github"

// CheckRun is a check_run event: a check run was created, completed, re-run
// ("rerequested") or one of its buttons pressed ("requested_action").
type CheckRun struct {
	// Action is "created", "completed", "rerequested" or "requested_action".
	Action string
	// CheckRunID is the check run's id.
	CheckRunID int64
	// Name is the check run's name, e.g. "Stagely / deploy".
	Name string
	// HeadSHA is the commit the check run belongs to.
	HeadSHA string
	// ExternalID is the id the creating App stored on the check run.
	ExternalID string
	// RequestedActionIdentifier is the pressed button's identifier; set only for "requested_action".
	// Who pressed it is SenderLogin.
	RequestedActionIdentifier string
	// PullRequestNumbers are the open pull requests whose head is HeadSHA in this repository;
	// GitHub never lists pull requests from forks here.
	PullRequestNumbers []int
	// AppID is the App that owns the check run; events for other Apps' runs arrive too.
	AppID int64
	// CheckSuiteID is the suite the run belongs to.
	CheckSuiteID int64
	// Origin is the repository, the installation and who caused the event, e.g. who pressed Re-run.
	Origin
}

// EventName returns "check_run".
func (CheckRun) EventName() string { return EventCheckRun }
func (CheckRun) sealed()           {}

func checkRunFrom(e *github.CheckRunEvent) (CheckRun, error) {
	run := e.GetCheckRun()
	c := CheckRun{
		Action:       e.GetAction(),
		CheckRunID:   run.GetID(),
		Name:         run.GetName(),
		HeadSHA:      run.GetHeadSHA(),
		ExternalID:   run.GetExternalID(),
		AppID:        run.GetApp().GetID(),
		CheckSuiteID: run.GetCheckSuite().GetID(),
		Origin:       originFrom(e.GetRepo(), e.GetInstallation(), e.GetSender()),
	}
	var prs []*github.PullRequest
	if run != nil { // a payload without check_run, which complete refuses below
		prs = run.PullRequests
	}
	for _, pr := range prs {
		if n := pr.GetNumber(); n > 0 {
			c.PullRequestNumbers = append(c.PullRequestNumbers, n)
		}
	}
	if ra := e.GetRequestedAction(); ra != nil {
		c.RequestedActionIdentifier = ra.Identifier
	}
	return complete(c, required{"action", c.Action == ""}, required{"check_run.id", c.CheckRunID == 0},
		required{"check_run.head_sha", c.HeadSHA == ""}, repository(c.Repo))
}
