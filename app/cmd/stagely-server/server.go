package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	stagely "github.com/stagely/stagely"
	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agentdist"
	"github.com/stagely/stagely/app/api"
	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/config"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/app/installations"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/metrics"
	"github.com/stagely/stagely/app/recovery"
	"github.com/stagely/stagely/app/retention"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/app/setup"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// server is every long-lived part of the control plane, wired once.
type server struct {
	log    *slog.Logger
	hub    *hub.Hub
	orch   *deploy.Orchestrator
	worker *intake.Worker
	// recovery asks GitHub again for the webhooks it could not deliver to us.
	recovery *recovery.Loop
	auth     *auth.Auth
	pruner   *retention.Pruner
	http     *http.Server
}

// hubRef breaks the construction cycle: the orchestrator dispatches through the hub, and
// the hub reports to the orchestrator. It is set once, before anything runs.
type hubRef struct{ h *hub.Hub }

func (r *hubRef) Dispatch(ctx context.Context, agentID int64, job protocol.Deploy) error {
	return r.h.Dispatch(ctx, agentID, job)
}
func (r *hubRef) Cancel(agentID int64, jobID string) error { return r.h.Cancel(agentID, jobID) }
func (r *hubRef) Idle(agentID int64) bool                  { return r.h.Idle(agentID) }

// newServer builds every part of the control plane and wires them together.
func newServer(ctx context.Context, cfg config.Config, st *store.Store, keys *seal.Keyring, logger *slog.Logger) (*server, error) {
	// The App's credentials come from the environment or from /setup; the GitHub client asks
	// for them on every installation call, so an App stored by /setup is used with no restart.
	creds := appcreds.New(st, keys, cfg.App)
	// A stored App that cannot be opened (STAGELY_SECRET_KEY changed) stops the server here.
	_, haveApp, err := creds.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("load GitHub App credentials: %w", err)
	}
	setupToken := announceSetup(cfg, haveApp, logger)
	gh, err := github.NewClient(github.Options{
		APIURL: cfg.GitHubAPIURL.String(), WebURL: cfg.GitHubURL.String(), AppKey: creds.AppKey,
		HTTPClient: &http.Client{Timeout: 30 * time.Second}, Logger: logger,
	})
	if err != nil {
		return nil, err
	}

	ref := &hubRef{}
	var h *hub.Hub
	manifest, err := appmanifest.Render(cfg.PublicURL.String())
	if err != nil {
		return nil, err
	}
	met := metrics.New(func() int { return h.ConnectedCount() }, append(webhook.Events(), manifest.Events()...))
	secretSvc := secrets.New(st, keys)
	orch := deploy.New(deploy.Options{
		Store: st, Hub: ref, GitHub: func(id int64) deploy.GitHub { return gh.Installation(id) },
		Secrets: secretSvc, Metrics: met, PublicURL: cfg.PublicURL.String(), Logger: logger,
		AgentOfflineWait: cfg.AgentOfflineWait, AgentLostAfter: cfg.AgentLostAfter, SweepEvery: cfg.SweepInterval,
		ReportBackoff: cfg.ReportRetryMin,
	})
	dist, err := newAgentDist(cfg, logger)
	if err != nil {
		return nil, err
	}
	h = hub.New(hub.Options{Store: st, Sink: orch, Logger: logger, TrustedProxies: cfg.TrustedProxies,
		PingInterval: cfg.AgentPingInterval, PongTimeout: cfg.AgentPongTimeout, Updates: dist})
	ref.h = h
	worker := newIntakeWorker(st, orch, met, logger)

	p := parts{
		store: st, log: logger, metrics: met, hub: h,
		webhooks: intake.NewHandler(st, creds.WebhookSecret, worker.Poke, logger, met).
			WithLimits(intake.Limits{ReadTimeout: cfg.WebhookReadTimeout}),
	}
	if p.auth, err = auth.New(auth.Options{
		Store: st, Keys: keys, Creds: creds, GitHub: gh, PublicURL: cfg.PublicURL.String(), Logger: logger,
	}); err != nil {
		return nil, err
	}
	if p.setup, err = setup.New(setup.Options{
		Creds: creds, GitHub: gh, GitHubURL: cfg.GitHubURL.String(), PublicURL: cfg.PublicURL.String(), Token: setupToken, Logger: logger,
	}); err != nil {
		return nil, err
	}
	if p.api, err = api.New(api.Options{
		Store: st, Secrets: secretSvc, Revoker: h, GitHub: gh, CurrentUser: auth.CurrentUser, GitHubToken: auth.GitHubToken,
		GitHubURL: cfg.GitHubURL.String(), ServerURL: cfg.PublicURL.String(), Logger: logger, AgentUpdates: h,
		BootstrapTTL: cfg.AgentBootstrapTTL,
	}); err != nil {
		return nil, err
	}
	p.agents = dist
	router, err := routes(p)
	if err != nil {
		return nil, err
	}
	pruner := retention.New(retention.Options{
		Store: st, Logs: cfg.Retention.Logs, KeepLast: cfg.Retention.KeepLastLogs, Deliveries: cfg.Retention.Deliveries, Logger: logger,
	})
	return &server{
		log: logger, hub: h, orch: orch, worker: worker, auth: p.auth, pruner: pruner,
		recovery: recovery.New(recovery.Options{GitHub: gh, Store: st, Interval: cfg.RecoveryInterval, Logger: logger}),
		http:     newHTTPServer(router, cfg),
	}, nil
}

// newIntakeWorker makes the worker that handles stored webhook deliveries, each event by its
// handler: pushes, pull requests and check runs and suites deploy through orch; installation
// events keep the installations and their repositories in st.
func newIntakeWorker(st *store.Store, orch *deploy.Orchestrator, met *metrics.Metrics, logger *slog.Logger) *intake.Worker {
	return intake.NewWorker(intake.WorkerOptions{Queue: st, Logger: logger, Metrics: met, Handlers: []intake.EventHandler{
		intake.On(deploy.NewPushHandler(orch).Handle), intake.On(deploy.NewPullRequestHandler(orch).Handle),
		intake.On(deploy.NewCheckRunHandler(orch).Handle), intake.On(deploy.NewCheckSuiteHandler(orch).Handle),
		intake.On(installations.NewHandler(st, nil).Handle), intake.On(installations.NewRepositoriesHandler(st).Handle),
	}})
}

// announceSetup derives the /setup token and, while there is no App, prints the link holding it,
// once: like Jenkins' initial admin password, whoever can read this log may create the App.
func announceSetup(cfg config.Config, haveApp bool, logger *slog.Logger) string {
	token := setup.TokenFromKey(cfg.SecretKey)
	if !haveApp {
		setupURL := strings.TrimRight(cfg.PublicURL.String(), "/") + "/setup?token=" + token
		logger.Warn("no GitHub App yet: open setup_url to create it; the link works until an App exists", "setup_url", setupURL)
	}
	return token
}

// maxHeaderBytes bounds a request's headers: GitHub sends about 1 KiB, a browser's cookies a
// few; net/http's default, 1 MiB, would let slow senders hold a megabyte each.
const maxHeaderBytes = 64 << 10

// newHTTPServer bounds what a connection may hold: headers must arrive within 10 s and fit in
// maxHeaderBytes, a kept-alive connection is closed after cfg.HTTPIdleTimeout. There is no
// server-wide read or write deadline: agent WebSockets and log streams live for hours, so
// webhook bodies get their own read deadline from intake.
func newHTTPServer(h http.Handler, cfg config.Config) *http.Server {
	return &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: cfg.HTTPIdleTimeout, MaxHeaderBytes: maxHeaderBytes,
	}
}

// run serves until ctx ends, then stops every part: HTTP first (no new webhooks or agents),
// then the hub, then the worker and sweeper, which finish what they hold.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	parts := []func(context.Context) error{s.worker.Run, s.orch.Run, s.auth.Run, s.recovery.Run, s.pruner.Run}
	errs := make(chan error, len(parts))
	for _, part := range parts {
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

// newAgentDist serves the agent binaries of STAGELY_AGENT_DIR, else those built into the server.
func newAgentDist(cfg config.Config, logger *slog.Logger) (*agentdist.Dist, error) {
	opts := agentdist.Options{PublicURL: cfg.PublicURL.String(), Unit: stagely.AgentUnit()}
	if cfg.AgentDir != "" {
		opts.Files = os.DirFS(cfg.AgentDir)
	}
	d, err := agentdist.New(opts)
	if err != nil {
		return nil, err
	}
	switch {
	case len(d.Platforms()) > 0:
		logger.Info("serving the agent at /install.sh", "platforms", d.Platforms(), "version", d.Version(), "dir", cfg.AgentDir)
		if d.Version() == "" {
			logger.Warn("the agent binaries' version is unknown (no VERSION beside them): agents are not offered updates")
		}
	case cfg.AgentDir != "":
		return nil, fmt.Errorf("STAGELY_AGENT_DIR %s holds no %s or %s", cfg.AgentDir, agentdist.BinaryName("amd64"), agentdist.BinaryName("arm64"))
	default:
		logger.Warn("this server was built without agent binaries: /install.sh answers 503; run make build")
	}
	return d, nil
}
