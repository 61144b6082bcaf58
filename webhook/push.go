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
	// Repo is the repository pushed to.
	Repo Repo
	// InstallationID is 0 when the payload has no installation (a repository webhook, not the App's).
	InstallationID int64
	// HeadCommit is the zero Commit when GitHub sends head_commit: null, as it does for deletions.
	HeadCommit Commit
	// PusherName is pusher.name, the pusher's login.
	PusherName string
	// SenderLogin is sender.login.
	SenderLogin string
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
		Ref:            e.GetRef(),
		Before:         e.GetBefore(),
		After:          e.GetAfter(),
		Created:        e.GetCreated(),
		Deleted:        e.GetDeleted(),
		Forced:         e.GetForced(),
		Repo:           repoFrom(r),
		InstallationID: e.GetInstallation().GetID(),
		PusherName:     e.GetPusher().GetName(),
		SenderLogin:    e.GetSender().GetLogin(),
		CompareURL:     e.GetCompare(),
	}
	if p.Repo.DefaultBranch == "" {
		// Payloads before GitHub renamed the field only carry master_branch.
		p.Repo.DefaultBranch = r.GetMasterBranch()
	}
	if hc := e.GetHeadCommit(); hc != nil {
		p.HeadCommit = Commit{
			ID:      hc.GetID(),
			Message: hc.GetMessage(),
			Author: CommitAuthor{
				Name:     hc.GetAuthor().GetName(),
				Email:    hc.GetAuthor().GetEmail(),
				Username: hc.GetAuthor().GetLogin(),
			},
		}
	}
	return complete(p, required{"ref", p.Ref == ""}, required{"after", p.After == ""}, repository(p.Repo))
}
