package webhook

import (
	"strings"

	"github.com/google/go-github/v60/github"
)

// Push is a push event: commits, or a branch or tag created or deleted.
type Push struct {
	// Ref is the full ref, "refs/heads/main" or "refs/tags/v1".
	Ref string
	// Before is the SHA the ref pointed at before; all zeros when the ref was created.
	Before string
	// After is the SHA the ref points at now; all zeros when the ref was deleted.
	After string
	// Created is true when the push created the ref.
	Created bool
	// Deleted is true when the push deleted the ref.
	Deleted bool
	// Forced is true for a force push.
	Forced bool
	// Origin is the repository pushed to, the installation and sender.login.
	Origin
	// HeadCommit is the zero Commit when GitHub sends head_commit: null, as it does for deletions.
	HeadCommit Commit
	// Commits are the pushed commits, oldest first, as the payload lists them; GitHub may cut
	// the list of a long push (see TrustedPushCommits).
	Commits []Commit
	// PusherName is pusher.name, the pusher's login.
	PusherName string
	// CompareURL links to the diff Before...After.
	CompareURL string
}

// Commit is a pushed commit as the push payload describes it.
type Commit struct {
	// ID is the commit SHA.
	ID string
	// Message is the full commit message.
	Message string
	// Author is the commit's author as recorded in git.
	Author CommitAuthor
	// Added, Removed and Modified are the repository-relative paths the commit changed.
	Added, Removed, Modified []string
}

// TrustedPushCommits is the length from which a push payload's commit list is not trusted to
// be whole. GitHub's published description says the list holds at most 2048 commits; its older
// documentation, GitHub Enterprise Server releases of the time and its events timeline today say
// 20. A list of 20 or more may be either cut, so it is checked with the compare API: a push that
// long is rare, and one API call is cheap next to deploying a project the push never touched.
const TrustedPushCommits = 20

// ChangedFiles lists the files the push changed, as its commits list them, each once; ok is
// false when the payload cannot tell: a created branch (Before is all zeros: nothing to
// compare with), a forced push (its commits need not lead from Before), an empty list, or one
// GitHub may have cut (TrustedPushCommits or more).
func (p Push) ChangedFiles() (files []string, ok bool) {
	if p.Created || strings.Trim(p.Before, "0") == "" || p.Forced || len(p.Commits) >= TrustedPushCommits || len(p.Commits) == 0 {
		return nil, false
	}
	seen := map[string]bool{}
	for _, c := range p.Commits {
		for _, list := range [][]string{c.Added, c.Removed, c.Modified} {
			for _, f := range list {
				if !seen[f] {
					seen[f] = true
					files = append(files, f)
				}
			}
		}
	}
	return files, true
}

// CommitAuthor is a git identity; Username is empty when no GitHub account matches the email.
type CommitAuthor struct {
	// Name is the git author name.
	Name string
	// Email is the git author email.
	Email string
	// Username is the matching GitHub login, if any.
	Username string
}

const (
	branchPrefix = "refs/heads/"
	tagPrefix    = "refs/tags/"
)

// EventName returns "push".
func (Push) EventName() string { return EventPush }
func (Push) sealed()           {}

// IsTag reports whether the push moved a tag rather than a branch.
func (p Push) IsTag() bool { return strings.HasPrefix(p.Ref, tagPrefix) }

// Branch returns the branch name ("main" for "refs/heads/main"), or "" when Ref is not a branch.
func (p Push) Branch() string {
	branch, ok := strings.CutPrefix(p.Ref, branchPrefix)
	if !ok {
		return ""
	}
	return branch
}

// IsBranchDeletion reports whether the push deleted a branch; such a push has no commit to deploy.
func (p Push) IsBranchDeletion() bool { return p.Deleted && p.Branch() != "" }

func pushFrom(e *github.PushEvent) (Push, error) {
	r := e.GetRepo()
	p := Push{
		Ref:        e.GetRef(),
		Before:     e.GetBefore(),
		After:      e.GetAfter(),
		Created:    e.GetCreated(),
		Deleted:    e.GetDeleted(),
		Forced:     e.GetForced(),
		Origin:     originFrom(r, e.GetInstallation(), e.GetSender()),
		PusherName: e.GetPusher().GetName(),
		CompareURL: e.GetCompare(),
	}
	if p.Repo.DefaultBranch == "" {
		// Payloads before GitHub renamed the field only carry master_branch.
		p.Repo.DefaultBranch = r.GetMasterBranch()
	}
	if hc := e.GetHeadCommit(); hc != nil {
		p.HeadCommit = commitFrom(hc)
	}
	for _, c := range e.Commits {
		if c != nil {
			p.Commits = append(p.Commits, commitFrom(c))
		}
	}
	return complete(p, required{"ref", p.Ref == ""}, required{"after", p.After == ""}, repository(p.Repo))
}

func commitFrom(c *github.HeadCommit) Commit {
	return Commit{
		ID:      c.GetID(),
		Message: c.GetMessage(),
		Author: CommitAuthor{
			Name:     c.GetAuthor().GetName(),
			Email:    c.GetAuthor().GetEmail(),
			Username: c.GetAuthor().GetLogin(),
		},
		Added:    c.Added,
		Removed:  c.Removed,
		Modified: c.Modified,
	}
}
