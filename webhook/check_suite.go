package webhook

import "github.com/google/go-github/v60/github"

// CheckSuite is a check_suite event; "rerequested" is the Re-run all button.
type CheckSuite struct {
	// Action is "requested", "rerequested" or "completed".
	Action string
	// ID is the check suite's id.
	ID int64
	// HeadSHA is the commit the suite belongs to.
	HeadSHA string
	// HeadBranch is the branch of HeadSHA, empty when GitHub sends null (e.g. a detached SHA).
	HeadBranch string
	// AppID is the App that owns the suite.
	AppID int64
	// Origin is the repository, the installation and who caused the event.
	Origin
}

// EventName returns "check_suite".
func (CheckSuite) EventName() string { return EventCheckSuite }
func (CheckSuite) sealed()           {}

func checkSuiteFrom(e *github.CheckSuiteEvent) (CheckSuite, error) {
	suite := e.GetCheckSuite()
	c := CheckSuite{
		Action:     e.GetAction(),
		ID:         suite.GetID(),
		HeadSHA:    suite.GetHeadSHA(),
		HeadBranch: suite.GetHeadBranch(),
		AppID:      suite.GetApp().GetID(),
		Origin:     originFrom(e.GetRepo(), e.GetInstallation(), e.GetSender()),
	}
	return complete(c, required{"action", c.Action == ""}, required{"check_suite.id", c.ID == 0},
		required{"check_suite.head_sha", c.HeadSHA == ""}, repository(c.Repo))
}
