package github

import (
	"context"
	"errors"
	"fmt"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// maxListPages bounds how far a listing follows GitHub's pagination (100 items a page).
const maxListPages = 50

// Profile is the GitHub account a user token belongs to (GET /user).
type Profile struct {
	ID        int64
	Login     string
	Name      string
	Email     string
	AvatarURL string
}

// UserInstallation is one installation of the App that a user can see.
type UserInstallation struct {
	ID           int64
	AccountLogin string
	AccountID    int64
	// AccountType is "User" or "Organization".
	AccountType string
	// SuspendedAt is when the installation was suspended; zero while it is not.
	SuspendedAt time.Time
}

// Repository is one repository of an installation that a user can see.
type Repository struct {
	// ID is GitHub's numeric id, stable across renames.
	ID int64
	// Name is the repository's name without its owner.
	Name string
	// FullName is "owner/name".
	FullName string
	// DefaultBranch is the branch a new project deploys by default.
	DefaultBranch string
	// Private says whether the repository is private.
	Private bool
	// Push says whether the user the listing was made for may push to it (write access or more).
	Push bool
}

// asUser is a go-github client that sends a user's token, so GitHub decides what the user may see.
func (c *Client) asUser(token string) *gh.Client {
	return c.client(c.wire).WithAuthToken(token)
}

// UserProfile reads the account the user token belongs to.
func (c *Client) UserProfile(ctx context.Context, token string) (Profile, error) {
	u, _, err := c.asUser(token).Users.Get(ctx, "")
	if err != nil {
		return Profile{}, fmt.Errorf("get /user: %w", apiError(err))
	}
	if u.GetID() == 0 || u.GetLogin() == "" {
		return Profile{}, errors.New("get /user: the answer has no id or login")
	}
	return Profile{ID: u.GetID(), Login: u.GetLogin(), Name: u.GetName(), Email: u.GetEmail(), AvatarURL: u.GetAvatarURL()}, nil
}

// UserInstallations lists the App's installations the user can see (GET /user/installations).
func (c *Client) UserInstallations(ctx context.Context, token string) ([]UserInstallation, error) {
	cl := c.asUser(token)
	page, err := allPages(func(o *gh.ListOptions) ([]*gh.Installation, *gh.Response, error) {
		return cl.Apps.ListUserInstallations(ctx, o)
	})
	if err != nil {
		return nil, fmt.Errorf("list the user's installations: %w", err)
	}
	out := make([]UserInstallation, 0, len(page))
	for _, in := range page {
		typ := in.GetTargetType()
		if typ == "" {
			typ = in.GetAccount().GetType()
		}
		out = append(out, UserInstallation{
			ID: in.GetID(), AccountLogin: in.GetAccount().GetLogin(), AccountID: in.GetAccount().GetID(),
			AccountType: typ, SuspendedAt: in.GetSuspendedAt().Time,
		})
	}
	return out, nil
}

// UserRepositories lists the repositories of one installation that the user can see
// (GET /user/installations/{id}/repositories); an installation the user cannot see is ErrNotFound.
func (c *Client) UserRepositories(ctx context.Context, token string, installationID int64) ([]Repository, error) {
	cl := c.asUser(token)
	page, err := allPages(func(o *gh.ListOptions) ([]*gh.Repository, *gh.Response, error) {
		list, resp, err := cl.Apps.ListUserRepos(ctx, installationID, o)
		if err != nil {
			return nil, resp, err
		}
		return list.Repositories, resp, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the user's repositories of installation %d: %w", installationID, err)
	}
	out := make([]Repository, 0, len(page))
	for _, r := range page {
		out = append(out, Repository{
			ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName(),
			DefaultBranch: r.GetDefaultBranch(), Private: r.GetPrivate(), Push: r.GetPermissions()["push"],
		})
	}
	return out, nil
}

// allPages follows GitHub's pagination, 100 items a page, for at most maxListPages pages.
func allPages[T any](list func(*gh.ListOptions) ([]T, *gh.Response, error)) ([]T, error) {
	var out []T
	opts := &gh.ListOptions{PerPage: 100}
	for range maxListPages {
		page, resp, err := list(opts)
		if err != nil {
			return nil, apiError(err)
		}
		out = append(out, page...)
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}
