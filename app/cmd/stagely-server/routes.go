package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/agentdist"
	"github.com/stagely/stagely/app/api"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/app/metrics"
	"github.com/stagely/stagely/app/setup"
	"github.com/stagely/stagely/web"
)

// parts are what the routes serve.
type parts struct {
	store    pinger
	log      *slog.Logger
	metrics  *metrics.Metrics
	webhooks http.Handler
	hub      *hub.Hub
	auth     *auth.Auth
	setup    *setup.Setup
	api      *api.API
	agents   *agentdist.Dist
}

// pinger is the database as /readyz sees it.
type pinger interface {
	Ping(ctx context.Context) error
}

// routes is the server's one table of endpoints (DESIGN.md §7); the SPA takes every path
// that no route and no /api/ path claims.
func routes(p parts) (*gin.Engine, error) {
	spa, err := web.Handler()
	if err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(gin.Recovery())
	router.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	router.GET("/readyz", p.ready)
	router.GET("/metrics", gin.WrapH(p.metrics.Handler()))
	router.POST("/webhooks/github", gin.WrapH(p.webhooks))
	router.GET("/agent/ws", gin.WrapH(p.hub))
	router.POST("/agent/bootstrap", gin.WrapH(p.hub.Bootstrap()))
	p.agents.Register(router)
	p.auth.Register(router)
	p.setup.Register(router)
	p.api.Register(router.Group("", p.auth.SameOrigin(), p.auth.RequireUser()))
	router.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			p.api.NotFound(c)
			return
		}
		spa.ServeHTTP(c.Writer, c.Request)
	})
	return router, nil
}

// ready answers /readyz: ready while the database answers.
func (p parts) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := p.store.Ping(ctx); err != nil {
		p.log.Warn("readiness: database unreachable", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database unreachable"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
