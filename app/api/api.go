// Package api serves the dashboard's JSON API under /api (docs/api.md): the signed-in user's
// GitHub installations and repositories, projects, write-only secrets, deployments and agents.
// Sessions, origin checks and sign-in live in front of it (app/auth); this package only asks
// who the user is and for their GitHub token.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store"
)

// GitHub is what the API asks GitHub, always with the signed-in user's own token, so GitHub
// decides what the user may see (github.Client does).
type GitHub interface {
	UserInstallations(ctx context.Context, token string) ([]github.UserInstallation, error)
	UserRepositories(ctx context.Context, token string, installationID int64) ([]github.Repository, error)
}

// Revoker cuts an agent off at once: it closes the agent's connection and forgets cached tokens.
type Revoker interface {
	Revoke(agentID int64)
}

// Options configures the API; Store, Secrets, Revoker, GitHub, CurrentUser, GitHubToken and
// ServerURL are required.
type Options struct {
	Store   *store.Store
	Secrets *secrets.Service
	Revoker Revoker
	GitHub  GitHub
	// CurrentUser returns the signed-in user of the request (set by the auth middleware).
	CurrentUser func(*gin.Context) (store.User, bool)
	// GitHubToken returns the signed-in user's GitHub user-to-server token.
	GitHubToken func(*gin.Context) (string, bool)
	// GitHubURL is GitHub's web base, for check run links (default https://github.com).
	GitHubURL string
	// ServerURL is the public URL agents dial and download the installer from, written into
	// each agent's install command and cloud-init.
	ServerURL string
	// AgentTokenCost is the bcrypt cost of the agent tokens the API mints (default
	// agenttoken.Cost); tests lower it, as the hub checks any cost the same way.
	AgentTokenCost int
	// BootstrapTTL is how long the single-use bootstrap token shown at agent creation and
	// rotation stays valid (default 24h).
	BootstrapTTL time.Duration
	// Logger receives one line per failed request; never bodies, secrets or tokens.
	Logger *slog.Logger
	// AgentUpdates reports the agent version the server serves and applies the per-agent
	// auto-update switch (optional: without it versions show as unknown).
	AgentUpdates AgentUpdates
}

// API holds the handlers of /api.
type API struct {
	st          *store.Store
	secrets     *secrets.Service
	revoker     Revoker
	updates     AgentUpdates
	github      GitHub
	currentUser func(*gin.Context) (store.User, bool)
	githubToken func(*gin.Context) (string, bool)
	githubURL   string
	serverURL   string
	tokenCost   int
	bootTTL     time.Duration
	log         *slog.Logger
}

// New checks opts and builds the API.
func New(opts Options) (*API, error) {
	var missing []string
	if opts.Store == nil {
		missing = append(missing, "Store")
	}
	if opts.Secrets == nil {
		missing = append(missing, "Secrets")
	}
	if opts.Revoker == nil {
		missing = append(missing, "Revoker")
	}
	if opts.GitHub == nil {
		missing = append(missing, "GitHub")
	}
	if opts.CurrentUser == nil {
		missing = append(missing, "CurrentUser")
	}
	if opts.GitHubToken == nil {
		missing = append(missing, "GitHubToken")
	}
	if opts.ServerURL == "" {
		missing = append(missing, "ServerURL")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: options %s are required", strings.Join(missing, ", "))
	}
	if opts.GitHubURL == "" {
		opts.GitHubURL = "https://github.com"
	}
	if opts.AgentTokenCost == 0 {
		opts.AgentTokenCost = agenttoken.Cost
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BootstrapTTL <= 0 {
		opts.BootstrapTTL = DefaultBootstrapTTL
	}
	return &API{
		st: opts.Store, secrets: opts.Secrets, revoker: opts.Revoker, updates: opts.AgentUpdates, github: opts.GitHub,
		currentUser: opts.CurrentUser, githubToken: opts.GitHubToken,
		githubURL: strings.TrimRight(opts.GitHubURL, "/"),
		serverURL: opts.ServerURL, tokenCost: opts.AgentTokenCost, bootTTL: opts.BootstrapTTL, log: opts.Logger,
	}, nil
}

// Register mounts every route of docs/api.md under /api on r.
func (a *API) Register(r gin.IRouter) {
	g := r.Group("/api", noStore, limitBody)
	g.GET("/me", a.handle(a.me))
	g.GET("/installations", a.handle(a.listInstallations))
	g.GET("/installations/:id/repositories", a.handle(a.listRepositories))

	g.GET("/projects", a.handle(a.listProjects))
	g.POST("/projects", a.handle(a.createProject))
	g.GET("/projects/:id", a.handle(a.getProject))
	g.PATCH("/projects/:id", a.handle(a.updateProject))
	g.DELETE("/projects/:id", a.handle(a.deleteProject))
	g.GET("/projects/:id/secrets", a.handle(a.listSecrets))
	g.POST("/projects/:id/secrets/import", a.handle(a.importSecrets))
	g.PUT("/projects/:id/secrets/:scope/:key", a.handle(a.putSecret))
	g.PATCH("/projects/:id/secrets/:scope/:key", a.handle(a.patchSecret))
	g.DELETE("/projects/:id/secrets/:scope/:key", a.handle(a.deleteSecret))
	g.GET("/projects/:id/deployments", a.handle(a.listDeployments))
	g.GET("/projects/:id/previews", a.handle(a.listPreviews))

	g.GET("/agents", a.handle(a.listAgents))
	g.POST("/agents", a.handle(a.createAgent))
	g.POST("/agents/:id/rotate-token", a.handle(a.rotateAgentToken))
	g.DELETE("/agents/:id", a.handle(a.deleteAgent))
	g.GET("/agents/:id/events", a.handle(a.listAgentEvents))
	g.PATCH("/agents/:id", a.handle(a.patchAgent))
}

// NotFound answers a request under /api/ that matches no route, in the one error shape. The
// server's NoRoute handler calls it for paths under /api/ (the SPA takes every other path).
func (a *API) NotFound(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	a.fail(c, notFound("no API route %s %s: see docs/api.md", c.Request.Method, c.Request.URL.Path))
}

// noStore keeps answers (some carry a token shown once) out of every cache.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// handlerFunc serves one route for the signed-in user.
type handlerFunc func(c *gin.Context, u store.User) error

// handle resolves the user (401 without one) and writes any returned error in the one shape.
func (a *API) handle(h handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, ok := a.currentUser(c)
		if !ok {
			a.fail(c, &Error{code: codeUnauthenticated, Message: "you are not signed in: sign in with GitHub"})
			return
		}
		if err := h(c, u); err != nil {
			a.fail(c, err)
		}
	}
}

// audit appends an audit entry inside tx; detail must never hold a secret value or a token.
func audit(c *gin.Context, tx *store.Store, u store.User, action, targetType string, targetID int64, detail map[string]any) error {
	raw, err := jsonObject(detail)
	if err != nil {
		return err
	}
	err = tx.AddAudit(c.Request.Context(), store.AuditEntry{
		UserID: nullInt(u.ID), Actor: u.Login, Action: action,
		TargetType: targetType, TargetID: fmt.Sprint(targetID), Detail: raw,
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// DefaultBootstrapTTL is how long an agent's bootstrap token stays valid unless configured.
const DefaultBootstrapTTL = 24 * time.Hour
