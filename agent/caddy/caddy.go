// Package caddy configures Caddy, the reverse proxy in front of pull request previews,
// through its admin API: the agent owns one HTTP server in Caddy's config (its listeners,
// one route per preview host name and a 404 for any other host) and, with TLS on, the
// on-demand TLS policy for those host names and Caddy's `ask` check URL. Everything else
// in Caddy's config is left as it is. docs/agent-deploy.md ("Previews") describes it.
package caddy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// TLS modes of the agent's server.
const (
	// TLSOff serves plain HTTP: a TLS-terminating proxy is in front, or a test.
	TLSOff = "off"
	// TLSACME gets each host's certificate on demand from Caddy's default ACME issuers.
	TLSACME = "acme"
	// TLSInternal gets each host's certificate on demand from Caddy's local CA.
	TLSInternal = "internal"
)

// PolicyID is the @id of the agent's TLS automation policy.
const PolicyID = "stagely_previews_tls"

// requestTimeout bounds one admin API call: Caddy answers in milliseconds, a load in seconds.
const requestTimeout = 30 * time.Second

// maxBody bounds what the agent reads of Caddy's config.
const maxBody = 32 << 20

// Client calls Caddy's admin API.
type Client struct {
	admin string
	http  *http.Client
}

// New returns a client for the admin API at adminURL, like http://127.0.0.1:2019.
func New(adminURL string) *Client {
	return &Client{admin: strings.TrimRight(adminURL, "/"), http: &http.Client{}}
}

// Admin returns the admin API's URL.
func (c *Client) Admin() string { return c.admin }

// Site is the agent's part of Caddy's config.
type Site struct {
	// Server is the name of the agent's server under apps.http.servers.
	Server string
	// Listen are the server's listener addresses, like ":443".
	Listen []string
	// TLS is TLSOff, TLSACME or TLSInternal.
	TLS string
	// AskURL is the agent's on-demand TLS check, set as Caddy's on_demand_tls ask URL when TLS is on.
	AskURL string
	// Routes are the live previews' host names.
	Routes []Route
}

// Route sends one host name to the upstreams of one preview service.
type Route struct {
	// ID is the route's @id in Caddy's config, so /id/<ID> reaches it.
	ID   string
	Host string
	// Upstreams are ip:port addresses, one per running container of the service.
	Upstreams []string
}

// UnreachableError says Caddy's admin API could not be reached at all.
type UnreachableError struct {
	Admin string
	Err   error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("Caddy's admin API at %s is not reachable (%v)", e.Admin, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Ping checks that the admin API answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.config(ctx)
	return err
}

// Apply makes Caddy's config hold s, loading a new config only when it differs.
func (c *Client) Apply(ctx context.Context, s Site) (changed bool, err error) {
	cfg, err := c.config(ctx)
	if err != nil {
		return false, err
	}
	before, err := json.Marshal(cfg)
	if err != nil {
		return false, fmt.Errorf("encode Caddy's config: %w", err)
	}
	if err := setSite(cfg, s); err != nil {
		return false, err
	}
	after, err := json.Marshal(cfg)
	if err != nil {
		return false, fmt.Errorf("encode Caddy's config: %w", err)
	}
	if bytes.Equal(before, after) {
		return false, nil
	}
	if err := c.do(ctx, http.MethodPost, "/load", after, nil); err != nil {
		return false, fmt.Errorf("load Caddy's config: %w", err)
	}
	return true, nil
}

// config reads Caddy's whole config; an empty one is an empty object.
func (c *Client) config(ctx context.Context) (map[string]any, error) {
	var raw []byte
	if err := c.do(ctx, http.MethodGet, "/config/", nil, &raw); err != nil {
		return nil, fmt.Errorf("read Caddy's config: %w", err)
	}
	cfg := map[string]any{}
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse Caddy's config: %w", err)
	}
	return cfg, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, into *[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.admin+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &UnreachableError{Admin: c.admin, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(b) > maxBody {
		return fmt.Errorf("answer over %d bytes", maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("caddy answered %d: %s", resp.StatusCode, e.Error)
		}
		return fmt.Errorf("caddy answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if into != nil {
		*into = b
	}
	return nil
}

// setSite writes s into cfg: the server replaced as a whole, the TLS policy and ask URL
// set or removed. It refuses on-demand TLS when Caddy already asks another URL: the ask
// is global to Caddy, and replacing it would hand the user's own on-demand sites' check to
// the agent.
func setSite(cfg map[string]any, s Site) error {
	servers := child(child(child(cfg, "apps"), "http"), "servers")
	servers[s.Server] = server(s)

	if s.TLS == TLSOff {
		if tls, ok := lookup(cfg, "apps", "tls", "automation"); ok {
			if ps, ok := tls["policies"].([]any); ok {
				if ps = withoutPolicy(ps); len(ps) > 0 {
					tls["policies"] = ps
				} else {
					delete(tls, "policies")
				}
			}
		}
		return nil
	}
	automation := child(child(child(cfg, "apps"), "tls"), "automation")
	// Caddy 2.6 checks on-demand certificates with on_demand.ask; 2.7 and later still
	// accept it (deprecated in favour of a permission module).
	onDemand := child(automation, "on_demand")
	if ask, _ := onDemand["ask"].(string); ask != "" && ask != s.AskURL {
		return fmt.Errorf("on-demand TLS in Caddy already asks %s (apps.tls.automation.on_demand.ask), a setting for all of Caddy that the agent would have to replace with its own check at %s, so previews get no certificates: remove that ask URL from Caddy's config (the agent's check then decides for all on-demand hosts), or serve previews over plain HTTP behind your own TLS with STAGELY_PREVIEW_TLS=off", ask, s.AskURL)
	}
	onDemand["ask"] = s.AskURL
	ps, _ := automation["policies"].([]any)
	ps = withoutPolicy(ps)
	if len(s.Routes) > 0 {
		// First, so a catch-all policy of the user's does not shadow it; never without
		// subjects, which would make it a catch-all itself.
		pol := map[string]any{"@id": PolicyID, "subjects": hosts(s.Routes), "on_demand": true}
		if s.TLS == TLSInternal {
			pol["issuers"] = []any{map[string]any{"module": "internal"}}
		}
		ps = append([]any{pol}, ps...)
	}
	if len(ps) > 0 {
		automation["policies"] = ps
	} else {
		delete(automation, "policies")
	}
	return nil
}

// server is the agent's server: a route per host and a 404 for any other.
func server(s Site) map[string]any {
	routes := make([]any, 0, len(s.Routes)+1)
	for _, r := range s.Routes {
		ups := make([]any, 0, len(r.Upstreams))
		for _, u := range r.Upstreams {
			ups = append(ups, map[string]any{"dial": u})
		}
		routes = append(routes, map[string]any{
			"@id":      r.ID,
			"match":    []any{map[string]any{"host": []any{r.Host}}},
			"handle":   []any{map[string]any{"handler": "reverse_proxy", "upstreams": ups}},
			"terminal": true,
		})
	}
	routes = append(routes, map[string]any{
		"handle": []any{map[string]any{"handler": "static_response", "status_code": json.Number("404"),
			"body": "No live preview answers at this address.\n"}},
	})
	listen := make([]any, len(s.Listen))
	for i, l := range s.Listen {
		listen[i] = l
	}
	srv := map[string]any{"listen": listen, "routes": routes}
	if s.TLS == TLSOff {
		srv["automatic_https"] = map[string]any{"disable": true}
	}
	return srv
}

func hosts(routes []Route) []any {
	out := make([]any, len(routes))
	for i, r := range routes {
		out[i] = r.Host
	}
	return out
}

func withoutPolicy(ps []any) []any {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		if m, ok := p.(map[string]any); ok && m["@id"] == PolicyID {
			continue
		}
		out = append(out, p)
	}
	return out
}

// child returns m[key] as an object, creating it when missing or not an object.
func child(m map[string]any, key string) map[string]any {
	if c, ok := m[key].(map[string]any); ok {
		return c
	}
	c := map[string]any{}
	m[key] = c
	return c
}

func lookup(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		c, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = c
	}
	return m, true
}

// IsUnreachable reports whether err says the admin API could not be reached.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}
