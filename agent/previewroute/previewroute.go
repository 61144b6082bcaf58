// Package previewroute keeps Caddy's routes to the agent's live pull request previews: it
// records each live preview's host names on disk (no secrets), points each host at the
// current addresses of its service's containers, puts the routes back after an agent or
// Caddy restart, and answers Caddy's on-demand TLS check, so only hosts of live previews
// get certificates.
package previewroute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/caddy"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/protocol"
)

// Defaults for zero Options fields.
const (
	DefaultServer   = "stagely_previews"
	DefaultInterval = 30 * time.Second
)

// Endpoints finds the addresses of a service's running containers; *engine.Client is one.
type Endpoints interface {
	ServiceEndpoints(ctx context.Context, project, service string) ([]engine.Endpoint, error)
}

// Options configures a Router.
type Options struct {
	// Dir holds one record per live preview.
	Dir string
	// Caddy is the admin API client.
	Caddy *caddy.Client
	// Engine finds the containers' addresses.
	Engine Endpoints
	// Listen are the listener addresses of the agent's server in Caddy (":443" when empty).
	Listen []string
	// TLS is caddy.TLSACME (when empty), caddy.TLSInternal or caddy.TLSOff.
	TLS string
	// AskURL is the URL Caddy calls for its on-demand TLS check: where ServeHTTP listens.
	AskURL string
	// Server is the server's name in Caddy's config (DefaultServer when empty).
	Server string
	// Logger receives the router's log; nil discards it.
	Logger *slog.Logger
}

// Router keeps Caddy's routes in line with the live previews.
type Router struct {
	opts Options
	log  *slog.Logger

	// applyMu makes one read-modify-load of Caddy's config at a time.
	applyMu sync.Mutex
	mu      sync.Mutex
	records map[string]record
	// routes are each live preview's Caddy routes as last resolved.
	routes map[string][]caddy.Route
	// failing is set while Caddy cannot be reached, so the log says it once.
	failing bool
	// stale is set while Caddy may hold routes the agent no longer wants: a load failed.
	stale bool
}

// record is what the agent keeps on disk of a live preview.
type record struct {
	ComposeProject string                  `json:"compose_project"`
	Number         int                     `json:"number"`
	Routes         []protocol.PreviewRoute `json:"routes"`
}

// New returns a Router with the records found in opts.Dir.
func New(opts Options) (*Router, error) {
	if len(opts.Listen) == 0 {
		opts.Listen = []string{":443"}
	}
	if opts.TLS == "" {
		opts.TLS = caddy.TLSACME
	}
	if opts.Server == "" {
		opts.Server = DefaultServer
	}
	r := &Router{opts: opts, log: opts.Logger, records: map[string]record{}, routes: map[string][]caddy.Route{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the previews directory: %w", err)
	}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("read the previews directory: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var rec record
		b, err := os.ReadFile(filepath.Join(opts.Dir, e.Name()))
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.ComposeProject+".json" != e.Name() {
			r.log.Warn("ignoring an unreadable preview record", "file", e.Name(), "err", err)
			continue
		}
		r.records[rec.ComposeProject] = rec
	}
	return r, nil
}

// Check says, in words a user can act on, why previews cannot be routed: Caddy's admin API is out of reach.
func (r *Router) Check(ctx context.Context) error {
	if err := r.opts.Caddy.Ping(ctx); err != nil {
		return r.explain(err)
	}
	return nil
}

func (r *Router) explain(err error) error {
	if caddy.IsUnreachable(err) {
		return fmt.Errorf("%w. Previews route their host names through Caddy on this machine: install it with the agent's install script and its --previews option (or apt-get install caddy), and make sure its admin API listens at %s (STAGELY_CADDY_ADMIN)", err, r.opts.Caddy.Admin())
	}
	return err
}

// Set points the hosts of a preview's routes at its services' running containers and
// records the preview as live. Hosts of a previous deploy of it that are gone are removed.
func (r *Router) Set(ctx context.Context, project string, number int, routes []protocol.PreviewRoute) error {
	resolved, err := r.resolve(ctx, project, routes)
	if err != nil {
		return err
	}
	rec := record{ComposeProject: project, Number: number, Routes: slices.Clone(routes)}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// The check and the record are one step under mu, so two previews cannot both take a
	// host: Caddy refuses a config with two routes of one host (their @id is derived from
	// it), and would then route no preview at all.
	r.mu.Lock()
	if err := r.hostsTaken(project, routes); err != nil {
		r.mu.Unlock()
		return err
	}
	if err := atomicfile.WriteFile(r.path(project), b, 0o600); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("record the preview's routes: %w", err)
	}
	r.records[project] = rec
	r.routes[project] = resolved
	r.mu.Unlock()
	return r.apply(ctx)
}

// hostsTaken says which live preview other than project owns a host of routes; r.mu is held.
func (r *Router) hostsTaken(project string, routes []protocol.PreviewRoute) error {
	for _, other := range r.records {
		if other.ComposeProject == project {
			continue
		}
		for _, o := range other.Routes {
			for _, rt := range routes {
				if strings.EqualFold(o.Host, rt.Host) {
					return fmt.Errorf("host %s is already routed to the preview of pull request #%d (compose project %s) on this agent; two projects whose names differ only in _ and - get the same preview hosts: rename one project, or stop that preview first", rt.Host, other.Number, other.ComposeProject)
				}
			}
		}
	}
	return nil
}

// Remove deletes a preview's routes and its record. A preview without a record has no
// routes, and Caddy is then not needed.
func (r *Router) Remove(ctx context.Context, project string) error {
	r.mu.Lock()
	_, live := r.records[project]
	delete(r.records, project)
	delete(r.routes, project)
	r.mu.Unlock()
	if err := os.Remove(r.path(project)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the preview's record: %w", err)
	}
	if !live {
		return nil
	}
	return r.apply(ctx)
}

// Live reports whether host is a host name of a live preview.
func (r *Router) Live(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		for _, rt := range rec.Routes {
			if strings.EqualFold(rt.Host, host) {
				return true
			}
		}
	}
	return false
}

// Projects returns the compose projects of the live previews, sorted.
func (r *Router) Projects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.records))
	for p := range r.records {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ServeHTTP answers Caddy's on-demand TLS check, GET ?domain=<host>: 200 for a host of a
// live preview, 404 for any other, 400 without a domain.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	domain := req.URL.Query().Get("domain")
	switch {
	case domain == "":
		http.Error(w, "want ?domain=<host name>", http.StatusBadRequest)
	case r.Live(domain):
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "no live preview has this host name", http.StatusNotFound)
	}
}

// Sync resolves every live preview's hosts again and makes Caddy hold them: containers
// get new addresses when recreated or restarted, and a restarted Caddy has lost what the
// admin API gave it. A preview whose containers are not running keeps its last addresses.
func (r *Router) Sync(ctx context.Context) error {
	r.mu.Lock()
	recs := make([]record, 0, len(r.records))
	for _, rec := range r.records {
		recs = append(recs, rec)
	}
	stale := r.stale
	r.mu.Unlock()
	if len(recs) == 0 && !stale {
		return nil
	}
	for _, rec := range recs {
		resolved, err := r.resolve(ctx, rec.ComposeProject, rec.Routes)
		if err != nil {
			r.log.Warn("preview routes not re-resolved", "project", rec.ComposeProject, "err", err)
			continue
		}
		r.mu.Lock()
		if _, live := r.records[rec.ComposeProject]; live {
			r.routes[rec.ComposeProject] = resolved
		}
		r.mu.Unlock()
	}
	return r.apply(ctx)
}

// Run calls Sync at once and then every interval (DefaultInterval when zero) until ctx ends.
func (r *Router) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := r.Sync(ctx)
		r.mu.Lock()
		wasFailing := r.failing
		r.failing = err != nil
		r.mu.Unlock()
		switch {
		case err != nil && !wasFailing && ctx.Err() == nil:
			r.log.Warn("preview routes not synced with Caddy; retrying", "every", interval, "err", err)
		case err == nil && wasFailing:
			r.log.Info("preview routes synced with Caddy again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apply makes Caddy hold the routes of every live preview.
func (r *Router) apply(ctx context.Context) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	projects := make([]string, 0, len(r.routes))
	for p := range r.routes {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	var routes []caddy.Route
	for _, p := range projects {
		routes = append(routes, r.routes[p]...)
	}
	r.mu.Unlock()
	changed, err := r.opts.Caddy.Apply(ctx, caddy.Site{Server: r.opts.Server, Listen: r.opts.Listen, TLS: r.opts.TLS, AskURL: r.opts.AskURL, Routes: routes})
	r.mu.Lock()
	r.stale = err != nil
	r.mu.Unlock()
	if err != nil {
		return r.explain(err)
	}
	if changed {
		r.log.Info("preview routes loaded into Caddy", "routes", len(routes))
	}
	return nil
}

// resolve finds each route's upstreams: the addresses of its service's running
// containers on the preview's own networks (compose names them <project>_<network>),
// or on any network when the service is on none of those.
func (r *Router) resolve(ctx context.Context, project string, routes []protocol.PreviewRoute) ([]caddy.Route, error) {
	out := make([]caddy.Route, 0, len(routes))
	for _, rt := range routes {
		eps, err := r.opts.Engine.ServiceEndpoints(ctx, project, rt.Service)
		if err != nil {
			return nil, fmt.Errorf("find the containers of service %s: %w", rt.Service, err)
		}
		own := slices.DeleteFunc(slices.Clone(eps), func(e engine.Endpoint) bool { return !strings.HasPrefix(e.Network, project+"_") })
		if len(own) == 0 {
			own = eps
		}
		if len(own) == 0 {
			return nil, fmt.Errorf("service %s has no running container with a network address for %s to reach", rt.Service, rt.Host)
		}
		sort.Slice(own, func(a, b int) bool {
			return own[a].ContainerID+"\x00"+own[a].Network < own[b].ContainerID+"\x00"+own[b].Network
		})
		seen := map[string]bool{}
		var ups []string
		for _, e := range own {
			// One address per container: the first of its own networks, in a stable order.
			if seen[e.ContainerID] {
				continue
			}
			seen[e.ContainerID] = true
			ups = append(ups, net.JoinHostPort(e.IP, strconv.Itoa(rt.Port)))
		}
		sort.Strings(ups)
		out = append(out, caddy.Route{ID: routeID(rt.Host), Host: strings.ToLower(rt.Host), Upstreams: ups})
	}
	return out, nil
}

// routeID is a host's route @id in Caddy's config.
func routeID(host string) string { return "stagely_preview_" + strings.ToLower(host) }

func (r *Router) path(project string) string { return filepath.Join(r.opts.Dir, project+".json") }
