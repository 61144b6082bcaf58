package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/store"
)

func (a *API) listDeployments(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	ds, err := a.st.DeploymentsByProject(c.Request.Context(), p.ID, maxDeployments)
	if err != nil {
		return err
	}
	out := make([]deploymentView, 0, len(ds))
	for _, d := range ds {
		out = append(out, a.toDeploymentView(p, d))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// maxDeployments is how many of a project's newest deployments the list shows.
const maxDeployments = 50
