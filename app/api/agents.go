package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/agentdist"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/cloudinit"
	"github.com/stagely/stagely/store"
)

// maxAgentName is the agents.name limit of the migration, in characters.
const maxAgentName = 100

func checkAgentName(name string) *Validation {
	n := utf8.RuneCountInString(name)
	switch {
	case n == 0:
		return &Validation{Field: "name", Message: "is required: a name for the server, like prod-1"}
	case n > maxAgentName:
		return &Validation{Field: "name", Message: fmt.Sprintf("must be at most %d characters (it is %d)", maxAgentName, n)}
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return &Validation{Field: "name", Message: "must not contain control characters"}
	}
	return nil
}

// withToken is the answer that shows a freshly minted token, with the two ways to use it:
// the one-line installer and the cloud-init user data that runs it.
func (a *API) withToken(ag store.Agent, token string) (agentWithToken, error) {
	doc, err := cloudinit.Render(cloudinit.Params{ServerURL: a.serverURL, Token: token})
	if err != nil {
		return agentWithToken{}, fmt.Errorf("render cloud-init: %w", err)
	}
	return agentWithToken{
		Agent: a.toAgentView(ag), Token: token, CloudInit: doc,
		InstallCommand: agentdist.InstallCommand(a.serverURL, token),
	}, nil
}

func (a *API) listAgents(c *gin.Context, u store.User) error {
	ags, err := a.st.AgentsByUser(c.Request.Context(), u.ID)
	if err != nil {
		return err
	}
	return list(c, ags, a.toAgentView)
}

type createAgentRequest struct {
	Name string `json:"name"`
}

func (a *API) createAgent(c *gin.Context, u store.User) error {
	var req createAgentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if v := checkAgentName(name); v != nil {
		return invalid("the agent cannot be created as sent", *v)
	}
	ctx := c.Request.Context()
	var (
		minted agenttoken.Minted
		ag     store.Agent
		out    agentWithToken
	)
	// One transaction: if the script cannot be rendered, no agent exists whose token nobody saw.
	err := a.st.InTx(ctx, func(tx *store.Store) error {
		var err error
		// The agent gets no long-lived token now: its first connection trades the bootstrap
		// token for one (app/hub/bootstrap.go).
		ag, err = tx.CreateAgent(ctx, u.ID, name, func(id int64) (string, error) {
			minted, err = agenttoken.MintBootstrapCost(id, a.tokenCost)
			return "", err
		})
		if conflictOn(err, constraintAgentName) {
			return conflict(fmt.Sprintf("you already have an agent named %s: pick another name", name),
				Validation{Field: "name", Message: "already used by another of your agents"})
		}
		if err != nil {
			return err
		}
		if ag, err = a.setBootstrap(ctx, tx, ag.ID, minted.Hash); err != nil {
			return err
		}
		if out, err = a.withToken(ag, minted.Token); err != nil {
			return err
		}
		return audit(c, tx, u, "agent.create", "agent", ag.ID, map[string]any{"name": name})
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, out)
	return nil
}

// userAgent returns the agent named by the path's id when u owns it; anyone else's is not found.
func (a *API) userAgent(c *gin.Context, u store.User) (store.Agent, error) {
	return owned(c, u, "agent", a.st.AgentForUser)
}

func (a *API) rotateAgentToken(c *gin.Context, u store.User) error {
	ag, err := a.userAgent(c, u)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	// Rotation hands out a bootstrap token, like creation: the old long-lived token stops
	// working now, and the agent waits for its first connection with the new one.
	minted, err := agenttoken.MintBootstrapCost(ag.ID, a.tokenCost)
	if err != nil {
		return err
	}
	var out agentWithToken
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		if ag, err = a.setBootstrap(ctx, tx, ag.ID, minted.Hash); err != nil {
			return err
		}
		if out, err = a.withToken(ag, minted.Token); err != nil {
			return err
		}
		return audit(c, tx, u, "agent.rotate_token", "agent", ag.ID, nil)
	})
	if err != nil {
		return err
	}
	// After the commit: revoking earlier would let the old token reconnect before the new
	// hash is visible.
	a.revoker.Revoke(ag.ID)
	c.JSON(http.StatusOK, out)
	return nil
}

func (a *API) deleteAgent(c *gin.Context, u store.User) error {
	id, err := pathID(c, "id", "agent")
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		ag, err := tx.AgentForUser(ctx, u.ID, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteAgent(ctx, u.ID, id); err != nil {
			return err
		}
		return audit(c, tx, u, "agent.delete", "agent", id, map[string]any{"name": ag.Name})
	})
	if err != nil {
		return err
	}
	a.revoker.Revoke(id)
	c.Status(http.StatusNoContent)
	return nil
}

// setBootstrap stores the hash of a new bootstrap token valid for the configured TTL and
// returns the agent as it is now ("waiting for first connection").
func (a *API) setBootstrap(ctx context.Context, tx *store.Store, agentID int64, hash string) (store.Agent, error) {
	if err := tx.SetAgentBootstrap(ctx, agentID, hash, time.Now().Add(a.bootTTL)); err != nil {
		return store.Agent{}, err
	}
	return tx.AgentByID(ctx, agentID)
}

// maxAgentEvents is how many of an agent's newest events its page shows.
const maxAgentEvents = 50

// listAgentEvents answers the agent's history from the audit log, newest first: created,
// token rotated, bootstrap token exchanged or replayed, duplicate connections refused.
func (a *API) listAgentEvents(c *gin.Context, u store.User) error {
	ag, err := a.userAgent(c, u)
	if err != nil {
		return err
	}
	entries, err := a.st.AuditForTarget(c.Request.Context(), u.ID, "agent", strconv.FormatInt(ag.ID, 10), maxAgentEvents)
	if err != nil {
		return err
	}
	return list(c, entries, toAgentEventView)
}
