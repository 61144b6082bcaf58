package webhook

import "github.com/google/go-github/v60/github"

// PullRequest is a pull_request event of any action; the caller decides which actions matter.
type PullRequest struct {
	// Action is e.g. "opened", "synchronize", "reopened", "closed".
	Action string
	// Number is the pull request number.
	Number int
	// HeadSHA is the commit a check run for this pull request belongs on.
	HeadSHA string
	// HeadRef is the source branch name.
	HeadRef string
	// HeadRepoFullName is the source repository; it differs from Repo.FullName for a fork.
	HeadRepoFullName string
	// BaseRef is the target branch name.
	BaseRef string
	// Draft is true for a draft pull request.
	Draft bool
	// Origin is the base repository, the installation and who caused the event.
	Origin
}

// EventName returns "pull_request".
func (PullRequest) EventName() string { return EventPullRequest }
func (PullRequest) sealed()           {}

func pullRequestFrom(e *github.PullRequestEvent) (PullRequest, error) {
	pr := e.GetPullRequest()
	p := PullRequest{
		Action:           e.GetAction(),
		Number:           e.GetNumber(),
		HeadSHA:          pr.GetHead().GetSHA(),
		HeadRef:          pr.GetHead().GetRef(),
		HeadRepoFullName: pr.GetHead().GetRepo().GetFullName(),
		BaseRef:          pr.GetBase().GetRef(),
		Draft:            pr.GetDraft(),
		Origin:           originFrom(e.GetRepo(), e.GetInstallation(), e.GetSender()),
	}
	if p.Number == 0 {
		// Older deliveries carried the number only inside pull_request.
		p.Number = pr.GetNumber()
	}
	return complete(p, required{"action", p.Action == ""}, required{"number", p.Number == 0},
		required{"pull_request.head.sha", p.HeadSHA == ""}, repository(p.Repo))
}
