package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/caddy"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/previewroute"
)

// Defaults of the preview settings: Caddy's own default admin address, and the port next to it.
const (
	defaultCaddyAdmin = "http://127.0.0.1:2019"
	defaultAskListen  = "127.0.0.1:2020"
	defaultListen     = ":443"
)

// previewConfig is how the agent routes pull request previews through Caddy.
type previewConfig struct {
	// CaddyAdmin is Caddy's admin API (STAGELY_CADDY_ADMIN).
	CaddyAdmin string
	// AskListen is where the agent answers Caddy's on-demand TLS check (STAGELY_PREVIEW_ASK_LISTEN);
	// port 0 picks a free one.
	AskListen string
	// Listen are the listeners of the agent's server in Caddy (STAGELY_PREVIEW_LISTEN, comma-separated).
	Listen []string
	// TLS is acme, internal or off (STAGELY_PREVIEW_TLS).
	TLS string
}

// loadPreviewEnv reads the preview settings from the environment.
func (c *config) loadPreviewEnv(getenv func(string) string) error {
	p := previewConfig{CaddyAdmin: defaultCaddyAdmin, AskListen: defaultAskListen, Listen: []string{defaultListen}, TLS: caddy.TLSACME}
	if v := strings.TrimSpace(getenv("STAGELY_CADDY_ADMIN")); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("STAGELY_CADDY_ADMIN %q: want Caddy's admin API URL, such as %s", v, defaultCaddyAdmin)
		}
		p.CaddyAdmin = v
	}
	if v := strings.TrimSpace(getenv("STAGELY_PREVIEW_ASK_LISTEN")); v != "" {
		host, _, err := net.SplitHostPort(v)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("STAGELY_PREVIEW_ASK_LISTEN %q: want a loopback address and port, such as %s", v, defaultAskListen)
		}
		p.AskListen = v
	}
	if v := strings.TrimSpace(getenv("STAGELY_PREVIEW_LISTEN")); v != "" {
		p.Listen = nil
		for _, l := range strings.Split(v, ",") {
			l = strings.TrimSpace(l)
			if _, _, err := net.SplitHostPort(l); err != nil {
				return fmt.Errorf("STAGELY_PREVIEW_LISTEN %q: want listener addresses such as :443 or 127.0.0.1:8443, comma-separated", v)
			}
			p.Listen = append(p.Listen, l)
		}
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("STAGELY_PREVIEW_TLS"))); v {
	case "":
	case caddy.TLSACME, caddy.TLSInternal, caddy.TLSOff:
		p.TLS = v
	default:
		return fmt.Errorf("STAGELY_PREVIEW_TLS %q: want acme, internal or off", v)
	}
	c.Previews = p
	return nil
}

// startPreviews builds the preview router, starts the ask check's listener and the
// periodic sync of the routes into Caddy. stop ends both and waits for them. A listener
// that cannot start is logged, not fatal: deploys go on, and previews with TLS then fail
// their certificate checks, which the log explains.
func startPreviews(ctx context.Context, cfg config, log *slog.Logger) (_ *previewroute.Router, stop func(), _ error) {
	eng, err := engine.New(os.Getenv("DOCKER_HOST"), os.Getenv("DOCKER_TLS_VERIFY") != "")
	if err != nil {
		log.Warn("previews cannot find their containers: the Docker Engine API is out of reach", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	askURL := ""
	var srv *http.Server
	ln, err := net.Listen("tcp", cfg.Previews.AskListen)
	if err != nil {
		log.Error("previews: the on-demand TLS check cannot listen; set STAGELY_PREVIEW_ASK_LISTEN to a free loopback address", "addr", cfg.Previews.AskListen, "err", err)
	} else {
		askURL = "http://" + ln.Addr().String() + "/"
	}
	var endpoints previewroute.Endpoints
	if eng != nil {
		endpoints = eng
	} else {
		endpoints = noEngine{}
	}
	r, err := previewroute.New(previewroute.Options{
		Dir: filepath.Join(cfg.DataDir, "previews"), Caddy: caddy.New(cfg.Previews.CaddyAdmin), Engine: endpoints,
		Listen: cfg.Previews.Listen, TLS: cfg.Previews.TLS, AskURL: askURL, Logger: log,
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		cancel()
		return nil, nil, err
	}
	if ln != nil {
		srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("previews: the on-demand TLS check stopped", "err", err)
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	// Sync does nothing while no preview is live, so the loop costs nothing on an agent
	// that runs none, and never needs Caddy there.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.Run(ctx, previewroute.DefaultInterval)
	}()
	return r, stop, nil
}

// noEngine stands in for an unreachable Docker Engine API.
type noEngine struct{}

func (noEngine) ServiceEndpoints(context.Context, string, string) ([]engine.Endpoint, error) {
	return nil, errors.New("the Docker Engine API is out of reach (DOCKER_HOST)")
}
