package webhook

import (
	"strings"

	"github.com/google/go-github/v60/github"
)

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
	// HeadRepoFullName is the source repository; it differs from Repo.FullName for a fork, and
	// is empty when GitHub sends head.repo as null (the fork was deleted).
	HeadRepoFullName string
	// BaseRef is the target branch name.
	BaseRef string
	// Draft is true for a draft pull request.
	Draft bool
	// AuthorLogin is who opened the pull request (pull_request.user.login); SenderLogin is who
	// caused this event, which differs e.g. when a maintainer closes it.
	AuthorLogin string
	// AuthorAssociation is GitHub's OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR,
	// FIRST_TIME_CONTRIBUTOR, FIRST_TIMER or NONE: a hint only. It says nothing of write access
	// (an organization MEMBER may have none on this repository); ask the permission endpoint.
	AuthorAssociation string
	// Merged is true for a "closed" event of a merged pull request.
	Merged bool
	// Origin is the base repository, the installation and who caused the event.
	Origin
}

// FromFork says whether the head is in another repository than the base: a fork, or a
// repository GitHub no longer names (head.repo null once a fork is deleted). Such a head is
// code nobody with write access has pushed to the repository.
func (p PullRequest) FromFork() bool {
	return p.HeadRepoFullName == "" || !strings.EqualFold(p.HeadRepoFullName, p.Repo.FullName)
}

// EventName returns "pull_request".
func (PullRequest) EventName() string { return EventPullRequest }
func (PullRequest) sealed()           {}

func pullRequestFrom(e *github.PullRequestEvent) (PullRequest, error) {
	pr := e.GetPullRequest()
	p := PullRequest{
		Action:            e.GetAction(),
		Number:            e.GetNumber(),
		HeadSHA:           pr.GetHead().GetSHA(),
		HeadRef:           pr.GetHead().GetRef(),
		HeadRepoFullName:  pr.GetHead().GetRepo().GetFullName(),
		BaseRef:           pr.GetBase().GetRef(),
		Draft:             pr.GetDraft(),
		AuthorLogin:       pr.GetUser().GetLogin(),
		AuthorAssociation: pr.GetAuthorAssociation(),
		Merged:            pr.GetMerged(),
		Origin:            originFrom(e.GetRepo(), e.GetInstallation(), e.GetSender()),
	}
	if p.Number == 0 {
		// Older deliveries carried the number only inside pull_request.
		p.Number = pr.GetNumber()
	}
	return complete(p, required{"action", p.Action == ""}, required{"number", p.Number == 0},
		required{"pull_request.head.sha", p.HeadSHA == ""}, repository(p.Repo))
}
