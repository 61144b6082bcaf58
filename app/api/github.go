package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// userToken is the signed-in user's GitHub token; without one the user has to sign in again.
func (a *API) userToken(c *gin.Context) (string, error) {
	tok, ok := a.githubToken(c)
	if !ok || tok == "" {
		return "", &Error{code: codeUnauthenticated, Message: "your GitHub sign-in has expired: sign in again"}
	}
	return tok, nil
}

func (a *API) me(c *gin.Context, u store.User) error {
	c.JSON(http.StatusOK, userView{ID: u.ID, Login: u.Login, Name: u.Name, AvatarURL: u.AvatarURL})
	return nil
}

func (a *API) listInstallations(c *gin.Context, _ store.User) error {
	tok, err := a.userToken(c)
	if err != nil {
		return err
	}
	ins, err := a.github.UserInstallations(c.Request.Context(), tok)
	if err != nil {
		return err
	}
	return list(c, ins, func(in github.UserInstallation) installationView {
		return installationView{ID: in.ID, Account: in.AccountLogin, AccountType: in.AccountType}
	})
}

func (a *API) listRepositories(c *gin.Context, _ store.User) error {
	id, err := pathID(c, "id", "installation")
	if err != nil {
		return err
	}
	tok, err := a.userToken(c)
	if err != nil {
		return err
	}
	repos, err := a.github.UserRepositories(c.Request.Context(), tok, id)
	if err != nil {
		return err
	}
	return list(c, repos, func(r github.Repository) repositoryView {
		return repositoryView{ID: r.ID, FullName: r.FullName, DefaultBranch: r.DefaultBranch, Private: r.Private, Push: r.Push}
	})
}
