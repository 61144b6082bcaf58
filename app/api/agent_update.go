package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/store"
)

// AgentUpdates is the self-update side of the hub: the version the server serves, and the
// per-agent switch applied to a live connection. *hub.Hub implements it.
type AgentUpdates interface {
	LatestAgentVersion() string
	SetAutoUpdate(agentID int64, on bool)
}

// Version statuses of an agent against the build the server serves.
const (
	versionCurrent  = "current"
	versionOutdated = "outdated"
	versionUnknown  = "unknown"
)

// versionStatus compares the agent's version with the served one; without a served
// version, before the agent's first HELLO, or for an unstamped development build (which
// is never updated), it is unknown.
func (a *API) versionStatus(ag store.Agent) (latest, status string) {
	if a.updates != nil {
		latest = a.updates.LatestAgentVersion()
	}
	switch {
	case latest == "" || ag.Version == "" || ag.Version == "dev":
		return latest, versionUnknown
	case ag.Version == latest:
		return latest, versionCurrent
	}
	return latest, versionOutdated
}

type patchAgentRequest struct {
	AutoUpdate *bool `json:"auto_update"`
}

// patchAgent switches automatic update of one of the user's agents on or off.
func (a *API) patchAgent(c *gin.Context, u store.User) error {
	id, err := pathID(c, "id", "agent")
	if err != nil {
		return err
	}
	var req patchAgentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.AutoUpdate == nil {
		return invalid("nothing to change", Validation{Field: "auto_update", Message: "is required: true or false"})
	}
	ctx := c.Request.Context()
	var ag store.Agent
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		if _, err := tx.AgentForUser(ctx, u.ID, id); err != nil {
			return err
		}
		if err := tx.SetAgentAutoUpdate(ctx, id, *req.AutoUpdate); err != nil {
			return err
		}
		if ag, err = tx.AgentByID(ctx, id); err != nil {
			return err
		}
		return audit(c, tx, u, "agent.auto_update", "agent", id, map[string]any{"auto_update": *req.AutoUpdate})
	})
	if err != nil {
		return err
	}
	// After the commit, so a connection that reads the switch sees the same value.
	if a.updates != nil {
		a.updates.SetAutoUpdate(id, *req.AutoUpdate)
	}
	c.JSON(http.StatusOK, a.toAgentView(ag))
	return nil
}
