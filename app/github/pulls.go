package github

import (
	"context"
	"fmt"
	"strings"
)

// PullRequestState is a pull request as GitHub has it now.
type PullRequestState struct {
	Number int
	// Open is false once the pull request is closed, merged or not.
	Open   bool
	Merged bool
	// HeadSHA and HeadRef are the head commit and its branch.
	HeadSHA, HeadRef string
	// HeadRepoFullName is the head's repository, "" once a fork is deleted.
	HeadRepoFullName string
	// AuthorLogin opened the pull request.
	AuthorLogin string
}

// FromFork says whether the head is in another repository than repo, or in one GitHub no
// longer names.
func (p PullRequestState) FromFork(repo string) bool {
	return p.HeadRepoFullName == "" || !strings.EqualFold(p.HeadRepoFullName, repo)
}

// PullRequest reads pull request number of repo (GET /repos/{owner}/{repo}/pulls/{number}),
// e.g. to check it is still open, and still at the commit a button was pressed for, before
// acting on a press; one GitHub does not have is ErrNotFound.
func (in *Installation) PullRequest(ctx context.Context, repo string, number int) (PullRequestState, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequestState{}, err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return PullRequestState{}, fmt.Errorf("read pull request #%d of %s: %w", number, repo, err)
	}
	pr, _, err := client.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return PullRequestState{}, fmt.Errorf("read pull request #%d of %s: %w", number, repo, apiError(err))
	}
	return PullRequestState{
		Number: pr.GetNumber(), Open: pr.GetState() == "open", Merged: pr.GetMerged(),
		HeadSHA: pr.GetHead().GetSHA(), HeadRef: pr.GetHead().GetRef(),
		HeadRepoFullName: pr.GetHead().GetRepo().GetFullName(), AuthorLogin: pr.GetUser().GetLogin(),
	}, nil
}
