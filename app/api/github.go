package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	gh "github.com/google/go-github/v60/github"

	"github.com/stagely/stagely/store"
)

// maxListPages bounds how far a listing follows GitHub's pagination (100 items a page).
const maxListPages = 50

// installation is what we need of one App installation the user can see on GitHub.
type installation struct {
	ID           int64
	AccountLogin string
	AccountID    int64
	AccountType  string
	Suspended    *gh.Timestamp
}

// repository is what we need of one repository of an installation.
type repository struct {
	ID            int64
	Name          string
	FullName      string
	DefaultBranch string
	Private       bool
}

// userGitHub calls GitHub as the signed-in user, so GitHub decides what the user may see.
type userGitHub struct{ c *gh.Client }

func (a *API) userGitHub(c *gin.Context) (userGitHub, error) {
	tok, ok := a.githubToken(c)
	if !ok || tok == "" {
		return userGitHub{}, &Error{code: codeUnauthenticated, Message: "your GitHub sign-in has expired: sign in again"}
	}
	cl := gh.NewClient(a.http).WithAuthToken(tok)
	base := *a.apiURL
	cl.BaseURL = &base
	cl.UserAgent = "stagely"
	return userGitHub{c: cl}, nil
}

// installations lists the App's installations the user can see (GET /user/installations).
func (g userGitHub) installations(ctx context.Context) ([]installation, error) {
	var out []installation
	opts := &gh.ListOptions{PerPage: 100}
	for range maxListPages {
		page, resp, err := g.c.Apps.ListUserInstallations(ctx, opts)
		if err != nil {
			return nil, githubError(err, "installations")
		}
		for _, in := range page {
			typ := in.GetTargetType()
			if typ == "" {
				typ = in.GetAccount().GetType()
			}
			out = append(out, installation{
				ID: in.GetID(), AccountLogin: in.GetAccount().GetLogin(), AccountID: in.GetAccount().GetID(),
				AccountType: typ, Suspended: in.SuspendedAt,
			})
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// repositories lists the repositories of one installation the user can see
// (GET /user/installations/{id}/repositories); an installation the user cannot see is a 404.
func (g userGitHub) repositories(ctx context.Context, installationID int64) ([]repository, error) {
	var out []repository
	opts := &gh.ListOptions{PerPage: 100}
	for range maxListPages {
		page, resp, err := g.c.Apps.ListUserRepos(ctx, installationID, opts)
		if err != nil {
			return nil, githubError(err, "installation")
		}
		for _, r := range page.Repositories {
			out = append(out, repository{
				ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName(),
				DefaultBranch: r.GetDefaultBranch(), Private: r.GetPrivate(),
			})
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// githubError maps GitHub's answers to ours: a refused token means signing in again, a
// hidden or missing thing is our 404, anything else is GitHub's fault (502, logged).
func githubError(err error, what string) error {
	var (
		er  *gh.ErrorResponse
		rl  *gh.RateLimitError
		arl *gh.AbuseRateLimitError
	)
	switch {
	case errors.As(err, &rl), errors.As(err, &arl):
		return &Error{code: codeGitHub, Message: "GitHub is limiting requests right now: try again in a minute", cause: err}
	case errors.As(err, &er) && er.Response != nil:
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return &Error{code: codeUnauthenticated, Message: "GitHub no longer accepts your sign-in: sign in again", cause: err}
		case http.StatusForbidden, http.StatusNotFound:
			return &Error{code: codeNotFound, Message: what + " not found on GitHub, or you cannot see it", cause: err}
		}
	}
	return &Error{code: codeGitHub, Message: "GitHub did not answer as expected: try again", cause: err}
}

func (a *API) me(c *gin.Context, u store.User) error {
	c.JSON(http.StatusOK, userView{ID: u.ID, Login: u.Login, Name: u.Name, AvatarURL: u.AvatarURL})
	return nil
}

func (a *API) listInstallations(c *gin.Context, _ store.User) error {
	g, err := a.userGitHub(c)
	if err != nil {
		return err
	}
	ins, err := g.installations(c.Request.Context())
	if err != nil {
		return err
	}
	out := make([]installationView, 0, len(ins))
	for _, in := range ins {
		out = append(out, installationView{ID: in.ID, Account: in.AccountLogin, AccountType: in.AccountType})
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (a *API) listRepositories(c *gin.Context, _ store.User) error {
	id, err := pathID(c, "id", "installation")
	if err != nil {
		return err
	}
	g, err := a.userGitHub(c)
	if err != nil {
		return err
	}
	repos, err := g.repositories(c.Request.Context(), id)
	if err != nil {
		return err
	}
	out := make([]repositoryView, 0, len(repos))
	for _, r := range repos {
		out = append(out, repositoryView{ID: r.ID, FullName: r.FullName, DefaultBranch: r.DefaultBranch, Private: r.Private})
	}
	c.JSON(http.StatusOK, out)
	return nil
}
