package github

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	gh "github.com/google/go-github/v60/github"
)

// Permission is a user's access to a repository, as GitHub's permission endpoint gives it.
type Permission struct {
	// Level is admin, write, read or none; GitHub counts maintain as write and triage as read.
	Level string
	// UserID is GitHub's id of the account the login names today: a login can change hands.
	UserID int64
}

// CanPush says whether the level lets the user push to the repository.
func (p Permission) CanPush() bool { return p.Level == "admin" || p.Level == "write" }

// RepoPermission asks GitHub, as the installation, what login may do in repo
// (GET /repos/{owner}/{repo}/collaborators/{login}/permission); a login GitHub does not know is
// ErrNotFound.
func (in *Installation) RepoPermission(ctx context.Context, repo, login string) (Permission, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Permission{}, err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return Permission{}, fmt.Errorf("read %s's permission on %s: %w", login, repo, err)
	}
	p, _, err := client.Repositories.GetPermissionLevel(ctx, owner, name, url.PathEscape(login))
	if err != nil {
		return Permission{}, fmt.Errorf("read %s's permission on %s: %w", login, repo, apiError(err))
	}
	return Permission{Level: p.GetPermission(), UserID: p.GetUser().GetID()}, nil
}

// HasWriteAccess says whether login may push to repo (admin, maintain or write), as GitHub's
// permission endpoint answers now; a login GitHub does not know has no access (false, nil).
func (in *Installation) HasWriteAccess(ctx context.Context, repo, login string) (bool, error) {
	p, err := in.RepoPermission(ctx, repo, login)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return p.CanPush(), nil
}

// BranchHead is the commit a branch points at now (GET /repos/{owner}/{repo}/git/ref/heads/{branch});
// a branch that does not exist is ErrNotFound.
func (in *Installation) BranchHead(ctx context.Context, repo, branch string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return "", fmt.Errorf("read the head of %s in %s: %w", branch, repo, err)
	}
	ref, _, err := client.Git.GetRef(ctx, owner, name, "heads/"+branch)
	if err != nil {
		return "", fmt.Errorf("read the head of %s in %s: %w", branch, repo, apiError(err))
	}
	return ref.GetObject().GetSHA(), nil
}

// Where head stands from base, as the compare API says it.
const (
	CompareAhead     = "ahead"
	CompareBehind    = "behind"
	CompareIdentical = "identical"
	CompareDiverged  = "diverged"
)

// Compare says where head stands from base: CompareAhead (head has commits base lacks, and
// base none head lacks), CompareBehind, CompareIdentical or CompareDiverged
// (GET /repos/{owner}/{repo}/compare/{base}...{head}). Commits with no common history, or
// that GitHub does not know, are ErrNotFound.
func (in *Installation) Compare(ctx context.Context, repo, base, head string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return "", fmt.Errorf("compare %s...%s in %s: %w", shortSHA(base), shortSHA(head), repo, err)
	}
	// One commit a page: only the status is read.
	cmp, _, err := client.Repositories.CompareCommits(ctx, owner, name, base, head, &gh.ListOptions{PerPage: 1})
	if err != nil {
		return "", fmt.Errorf("compare %s...%s in %s: %w", shortSHA(base), shortSHA(head), repo, apiError(err))
	}
	return cmp.GetStatus(), nil
}

// MaxCompareFiles is how many changed files GitHub's compare API lists at most for a whole
// comparison (its published description); a comparison listing that many may have more.
const MaxCompareFiles = 300

// ChangedFiles lists the files that differ between base and head when head is ahead of base
// (GET /repos/{owner}/{repo}/compare/{base}...{head}; a rename lists both names). complete is
// false when GitHub cannot tell them all: head is not ahead of base (a forced push), or the
// list reached GitHub's MaxCompareFiles. Commits GitHub does not know are ErrNotFound.
func (in *Installation) ChangedFiles(ctx context.Context, repo, base, head string) (files []string, complete bool, err error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, false, err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("list the files changed in %s...%s in %s: %w", shortSHA(base), shortSHA(head), repo, err)
	}
	// No paging parameters: GitHub lists the changed files only on the first page anyway.
	cmp, _, err := client.Repositories.CompareCommits(ctx, owner, name, base, head, nil)
	if err != nil {
		return nil, false, fmt.Errorf("list the files changed in %s...%s in %s: %w", shortSHA(base), shortSHA(head), repo, apiError(err))
	}
	if st := cmp.GetStatus(); st != CompareAhead && st != CompareIdentical {
		return nil, false, nil
	}
	for _, f := range cmp.Files {
		files = append(files, f.GetFilename())
		if prev := f.GetPreviousFilename(); prev != "" {
			files = append(files, prev)
		}
	}
	return files, len(cmp.Files) < MaxCompareFiles, nil
}
