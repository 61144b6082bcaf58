package api

import (
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
	return list(c, ds, func(d store.Deployment) deploymentView { return a.toDeploymentView(p, d) })
}

// maxDeployments is how many of a project's newest deployments the list shows.
const maxDeployments = 50
