package previewroute_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/caddy"
	"github.com/stagely/stagely/agent/caddy/caddytest"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/previewroute"
	"github.com/stagely/stagely/agent/protocol"
)

// endpointsFunc serves ServiceEndpoints from a function.
type endpointsFunc func(project, service string) ([]engine.Endpoint, error)

func (f endpointsFunc) ServiceEndpoints(_ context.Context, project, service string) ([]engine.Endpoint, error) {
	return f(project, service)
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

func TestRouter_OnDemandTLSCertificatesOnlyForLivePreviewHosts(t *testing.T) {
	t.Parallel()
	c := caddytest.Start(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from pr 7") }))
	t.Cleanup(app.Close)
	eps := endpointsFunc(func(project, service string) ([]engine.Endpoint, error) {
		return []engine.Endpoint{{ContainerID: "c1", Network: project + "_default", IP: "127.0.0.1"}}, nil
	})
	var asked atomic.Int64
	var router *previewroute.Router
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		router.ServeHTTP(w, r)
	}))
	t.Cleanup(ask.Close)
	listen := fmt.Sprintf("127.0.0.1:%d", c.HTTPSPort)
	var err error
	router, err = previewroute.New(previewroute.Options{Dir: t.TempDir(), Caddy: caddy.New(c.Admin), Engine: eps,
		Listen: []string{listen}, TLS: caddy.TLSInternal, AskURL: ask.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := "web--pr-7--shop.preview.example.com"
	if err := router.Set(ctx, "shop-pr-7", 7, []protocol.PreviewRoute{{Host: host, Service: "web", Port: portOf(t, app.URL)}}); err != nil {
		t.Fatal(err)
	}

	// Caddy holds the agent's ask URL for its on-demand check.
	resp, err := http.Get(c.Admin + "/config/apps/tls/automation/on_demand")
	if err != nil {
		t.Fatal(err)
	}
	var od struct {
		Ask string `json:"ask"`
	}
	err = json.NewDecoder(resp.Body).Decode(&od)
	resp.Body.Close()
	if err != nil || od.Ask != ask.URL+"/" {
		t.Fatalf("Caddy's on_demand ask = %q (%v), want %q", od.Ask, err, ask.URL+"/")
	}

	get := func(sni string) (string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true}} // Caddy's local CA is not trusted here.
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+listen+"/", nil)
		req.Host = sni
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var body string
	deadline := time.Now().Add(time.Minute)
	for body, err = get(host); err != nil && time.Now().Before(deadline); body, err = get(host) {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || body != "hello from pr 7" {
		t.Fatalf("HTTPS to %s = %q, %v; want the preview's page", host, body, err)
	}
	if asked.Load() == 0 {
		t.Error("Caddy issued the certificate without asking the agent")
	}
	if _, err := get("web--pr-8--shop.preview.example.com"); err == nil {
		t.Error("Caddy completed a TLS handshake for a host of no live preview")
	}

	// Once the preview is removed, its host gets nothing either.
	if err := router.Remove(ctx, "shop-pr-7"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?domain="+host, nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("ask after removal = %d, want 404", rec.Code)
	}
}

func TestRouter_ServesAskCheckByLiveHosts(t *testing.T) {
	t.Parallel()
	c := caddytest.Start(t)
	ep := engine.Endpoint{ContainerID: "c1", Network: "shop-pr-3_default", IP: "172.30.0.2"}
	router, err := previewroute.New(previewroute.Options{Dir: t.TempDir(), Caddy: caddy.New(c.Admin),
		Engine: endpointsFunc(func(string, string) ([]engine.Endpoint, error) { return []engine.Endpoint{ep}, nil }),
		Listen: []string{fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))}, TLS: caddy.TLSOff})
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Set(context.Background(), "shop-pr-3", 3, []protocol.PreviewRoute{{Host: "web--pr-3--shop.p.example.com", Service: "web", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query string
		want  int
	}{
		{"a live preview's host gets a certificate", "?domain=web--pr-3--shop.p.example.com", http.StatusOK},
		{"the host in another case is the same host", "?domain=WEB--pr-3--shop.p.example.com", http.StatusOK},
		{"any other host gets none", "?domain=web--pr-4--shop.p.example.com", http.StatusNotFound},
		{"a production host gets none", "?domain=shop.example.com", http.StatusNotFound},
		{"no domain is a bad request", "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+tt.query, nil))
			if rec.Code != tt.want {
				t.Errorf("ask %q = %d, want %d", tt.query, rec.Code, tt.want)
			}
		})
	}
}

func TestRouter_RefusesAHostAnotherLivePreviewOwnsAndKeepsRoutingTheOthers(t *testing.T) {
	t.Parallel()
	c := caddytest.Start(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from ", r.Host) }))
	t.Cleanup(app.Close)
	eps := endpointsFunc(func(project, service string) ([]engine.Endpoint, error) {
		return []engine.Endpoint{{ContainerID: "c-" + project, Network: project + "_default", IP: "127.0.0.1"}}, nil
	})
	listen := fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))
	router, err := previewroute.New(previewroute.Options{Dir: t.TempDir(), Caddy: caddy.New(c.Admin), Engine: eps,
		Listen: []string{listen}, TLS: caddy.TLSOff})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	port := portOf(t, app.URL)
	// Projects my_shop and my-shop both get this host: names are folded to hyphens.
	host := "web--pr-1--my-shop.preview.example.com"
	other := "web--pr-2--my-shop.preview.example.com"
	if err := router.Set(ctx, "my_shop-pr-1", 1, []protocol.PreviewRoute{{Host: host, Service: "web", Port: port}}); err != nil {
		t.Fatal(err)
	}
	if err := router.Set(ctx, "my_shop-pr-2", 2, []protocol.PreviewRoute{{Host: other, Service: "web", Port: port}}); err != nil {
		t.Fatal(err)
	}
	err = router.Set(ctx, "my-shop-pr-1", 1, []protocol.PreviewRoute{{Host: host, Service: "web", Port: port}})
	if err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "my_shop-pr-1") {
		t.Fatalf("Set of a host another preview owns = %v, want an error naming the host and my_shop-pr-1", err)
	}
	if got := router.Projects(); strings.Join(got, ",") != "my_shop-pr-1,my_shop-pr-2" {
		t.Errorf("live previews = %v, want the refused one left out", got)
	}
	// Caddy still routes both earlier previews, after another Set forces a fresh load.
	if err := router.Set(ctx, "my_shop-pr-2", 2, []protocol.PreviewRoute{{Host: other, Service: "web", Port: port}}); err != nil {
		t.Fatalf("a later Set of another preview: %v", err)
	}
	for _, h := range []string{host, other} {
		code, body, err := caddytest.Get(ctx, listen, h, "/")
		if err != nil || code != http.StatusOK || !strings.Contains(body, "hello from "+h) {
			t.Errorf("%s through Caddy: %d %q %v, want the preview's page", h, code, body, err)
		}
	}
	// The same preview may set its own host again.
	if err := router.Set(ctx, "my_shop-pr-1", 1, []protocol.PreviewRoute{{Host: host, Service: "web", Port: port}}); err != nil {
		t.Errorf("a preview's redeploy of its own host: %v", err)
	}
}
