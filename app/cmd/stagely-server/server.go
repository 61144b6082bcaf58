package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/api"
	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/config"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/app/installations"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/metrics"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/app/setup"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/web"
)

// server is every long-lived part of the control plane, wired once.
type server struct {
	log    *slog.Logger
	hub    *hub.Hub
	orch   *deploy.Orchestrator
	worker *intake.Worker
	auth   *auth.Auth
	http   *http.Server
}

// hubRef breaks the construction cycle: the orchestrator dispatches through the hub, and
// the hub reports to the orchestrator. It is set once, before anything runs.
type hubRef struct{ h *hub.Hub }

func (r *hubRef) Dispatch(ctx context.Context, agentID int64, job protocol.Deploy) error {
	return r.h.Dispatch(ctx, agentID, job)
}
func (r *hubRef) Cancel(agentID int64, jobID string) error { return r.h.Cancel(agentID, jobID) }
func (r *hubRef) Idle(agentID int64) bool                  { return r.h.Idle(agentID) }

func newServer(cfg config.Config, st *store.Store, keys *seal.Keyring, logger *slog.Logger) (*server, error) {
	httpClient := &http.Client{Timeout: 30 * time.Second}
	// The App's credentials come from the environment or from /setup; a server started
	// without them starts using them the moment /setup stores them, with no restart.
	creds := appcreds.New(st, keys, cfg.App)
	var app atomic.Pointer[github.App]
	useCreds := func(c config.AppCredentials) error {
		a, err := github.New(github.Options{
			AppID: c.AppID, PrivateKeyPEM: c.PrivateKeyPEM, APIURL: cfg.GitHubAPIURL.String(),
			HTTPClient: httpClient, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("GitHub App: %w", err)
		}
		app.Store(a)
		return nil
	}
	current, ok, err := creds.Current(context.Background())
	if err != nil {
		return nil, fmt.Errorf("load GitHub App credentials: %w", err)
	}
	if ok {
		if err := useCreds(current); err != nil {
			return nil, err
		}
	}
	creds.Subscribe(func(c config.AppCredentials) {
		if err := useCreds(c); err != nil {
			logger.Error("use the GitHub App stored by /setup", "err", err)
		}
	})
	installation := func(id int64) deploy.GitHub {
		if a := app.Load(); a != nil {
			return a.Installation(id)
		}
		return unconfiguredGitHub{}
	}

	ref := &hubRef{}
	var h *hub.Hub
	met := metrics.New(func() int { return h.ConnectedCount() })
	secretSvc := secrets.New(st, keys)
	orch := deploy.New(deploy.Options{
		Store: st, Hub: ref, GitHub: installation, Secrets: secretSvc, Metrics: met,
		PublicURL: cfg.PublicURL.String(), Logger: logger,
		AgentOfflineWait: cfg.AgentOfflineWait, AgentLostAfter: cfg.AgentLostAfter, SweepEvery: cfg.SweepInterval,
	})
	h = hub.New(hub.Options{Store: st, Sink: orch, Logger: logger})
	ref.h = h

	worker := intake.NewWorker(intake.WorkerOptions{Queue: st, Logger: logger, Metrics: met, Handlers: []intake.EventHandler{
		intake.On(deploy.NewPushHandler(orch).Handle), intake.On(deploy.NewPullRequestHandler(orch).Handle),
		intake.On(deploy.NewCheckRunHandler(orch).Handle), intake.On(deploy.NewCheckSuiteHandler(orch).Handle),
		intake.On(installations.NewHandler(st, nil).Handle), intake.On(installations.NewRepositoriesHandler(st).Handle),
	}})
	webhookSecret := func(ctx context.Context) ([]byte, error) {
		c, ok, err := creds.Current(ctx)
		if err != nil {
			return nil, err
		}
		if !ok || c.WebhookSecret == "" {
			return nil, errNoApp
		}
		return []byte(c.WebhookSecret), nil
	}
	webhooks := intake.NewHandler(st, webhookSecret, worker.Poke, logger, met)

	authn, err := auth.New(auth.Options{
		Store: st, Keys: keys, Creds: creds, GitHubURL: cfg.GitHubURL.String(), APIURL: cfg.GitHubAPIURL.String(),
		PublicURL: cfg.PublicURL.String(), HTTPClient: httpClient, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	setupPages, err := setup.New(setup.Options{
		Creds: creds, GitHubURL: cfg.GitHubURL.String(), APIURL: cfg.GitHubAPIURL.String(),
		PublicURL: cfg.PublicURL.String(), HTTPClient: httpClient, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	dashboardAPI, err := api.New(api.Options{
		Store: st, Secrets: secretSvc, Revoker: h, CurrentUser: auth.CurrentUser, GitHubToken: auth.GitHubToken,
		GitHubAPIURL: cfg.GitHubAPIURL.String(), GitHubURL: cfg.GitHubURL.String(), ServerURL: cfg.PublicURL.String(),
		AgentImage: cfg.AgentImage, HTTPClient: httpClient, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	spa, err := web.Handler()
	if err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(gin.Recovery())
	router.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	router.GET("/readyz", func(c *gin.Context) {
		pingCtx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(pingCtx); err != nil {
			logger.Warn("readiness: database unreachable", "err", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database unreachable"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	router.GET("/metrics", gin.WrapH(met.Handler()))
	router.POST("/webhooks/github", gin.WrapH(webhooks))
	router.GET("/agent/ws", gin.WrapH(h))
	authn.Register(router)
	setupPages.Register(router)
	dashboardAPI.Register(router.Group("", authn.SameOrigin(), authn.RequireUser()))
	router.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			dashboardAPI.NotFound(c)
			return
		}
		spa.ServeHTTP(c.Writer, c.Request)
	})

	return &server{
		log: logger, hub: h, orch: orch, worker: worker, auth: authn,
		http: &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second},
	}, nil
}

// run serves until ctx ends, then stops every part: HTTP first (no new webhooks or agents),
// then the hub, then the worker and sweeper, which finish what they hold.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, part := range []func(context.Context) error{s.worker.Run, s.orch.Run, s.auth.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := part(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(ln) }()

	var err error
	select {
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if serr := s.http.Shutdown(shutdownCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		s.log.Warn("shut down HTTP", "err", serr)
	}
	s.hub.Close()
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	s.log.Info("stopped")
	return err
}

// unconfiguredGitHub answers every call of a server without a GitHub App with one clear error.
type unconfiguredGitHub struct{}

var errNoApp = errors.New("no GitHub App is configured: finish /setup or set STAGELY_GITHUB_APP_ID, STAGELY_GITHUB_APP_PRIVATE_KEY and STAGELY_GITHUB_WEBHOOK_SECRET")

func (unconfiguredGitHub) ReadFile(context.Context, string, string, string) ([]byte, error) {
	return nil, errNoApp
}
func (unconfiguredGitHub) RepoReadToken(context.Context, int64) (github.Token, error) {
	return github.Token{}, errNoApp
}
func (unconfiguredGitHub) TarballURL(string, string) string { return "" }
func (unconfiguredGitHub) CreateCheckRun(context.Context, string, github.NewCheckRun) (int64, error) {
	return 0, errNoApp
}
func (unconfiguredGitHub) UpdateCheckRun(context.Context, string, int64, github.CheckRunUpdate) error {
	return errNoApp
}
func (unconfiguredGitHub) CompleteCheckRun(context.Context, string, int64, github.CheckRunResult) error {
	return errNoApp
}
func (unconfiguredGitHub) CreateStatus(context.Context, string, string, github.CommitStatus) error {
	return errNoApp
}
func (unconfiguredGitHub) CreateDeployment(context.Context, string, github.NewDeployment) (int64, error) {
	return 0, errNoApp
}
func (unconfiguredGitHub) CreateDeploymentStatus(context.Context, string, int64, github.DeploymentStatus) error {
	return errNoApp
}
