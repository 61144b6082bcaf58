package caddy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/caddy"
	"github.com/stagely/stagely/agent/caddy/caddytest"
)

func TestApply_KeepsTheRestOfCaddysConfigAndLoadsOnlyChanges(t *testing.T) {
	t.Parallel()
	c := caddytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	userAddr := fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))
	user := map[string]any{"listen": []string{userAddr}, "routes": []any{map[string]any{
		"handle": []any{map[string]any{"handler": "static_response", "body": "the user's own site"}}}}}
	userConfig(t, c.Admin, http.MethodPut, "/config/apps/http/servers", map[string]any{"mine": user})

	client := caddy.New(c.Admin)
	listen := fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))
	site := caddy.Site{Server: "stagely_previews", Listen: []string{listen}, TLS: caddy.TLSOff,
		Routes: []caddy.Route{{ID: "stagely_preview_a.example.com", Host: "a.example.com", Upstreams: []string{"127.0.0.1:9"}}}}
	for i, want := range []bool{true, false} {
		changed, err := client.Apply(ctx, site)
		if err != nil {
			t.Fatal(err)
		}
		if changed != want {
			t.Errorf("apply %d changed = %v, want %v", i+1, changed, want)
		}
	}
	if code, body, err := caddytest.Get(ctx, userAddr, "anything", "/"); err != nil || body != "the user's own site" {
		t.Errorf("the user's server answers %d %q %v after Apply", code, body, err)
	}
	// The route is reachable by its @id.
	resp, err := http.Get(c.Admin + "/id/stagely_preview_a.example.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /id/ of the route: %s", resp.Status)
	}
	if code, body, err := caddytest.Get(ctx, listen, "b.example.com", "/"); err != nil || code != http.StatusNotFound || !strings.Contains(body, "No live preview") {
		t.Errorf("an unknown host answers %d %q %v, want the 404", code, body, err)
	}
}

func TestApply_SaysCaddyIsUnreachable(t *testing.T) {
	t.Parallel()
	_, err := caddy.New(fmt.Sprintf("http://127.0.0.1:%d", caddytest.FreePort(t))).Apply(context.Background(), caddy.Site{Server: "s", TLS: caddy.TLSOff})
	if !caddy.IsUnreachable(err) || !strings.Contains(err.Error(), "is not reachable") {
		t.Fatalf("err = %v, want an UnreachableError", err)
	}
}

func TestApply_RefusesOnDemandTLSWhenTheUserHasAnotherAskURL(t *testing.T) {
	t.Parallel()
	c := caddytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	userAsk := "http://127.0.0.1:5555/users-own-check"
	userConfig(t, c.Admin, http.MethodPost, "/config/apps/tls",
		map[string]any{"automation": map[string]any{"on_demand": map[string]any{"ask": userAsk}}})
	site := caddy.Site{Server: "stagely_previews", Listen: []string{fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))}, TLS: caddy.TLSInternal,
		AskURL: "http://127.0.0.1:7999/stagely-ask",
		Routes: []caddy.Route{{ID: "stagely_preview_a.example.com", Host: "a.example.com", Upstreams: []string{"127.0.0.1:9"}}}}
	_, err := caddy.New(c.Admin).Apply(ctx, site)
	if err == nil || !strings.Contains(err.Error(), userAsk) || !strings.Contains(err.Error(), "on_demand") {
		t.Fatalf("Apply over the user's ask URL = %v, want an error naming it", err)
	}
	resp, err := http.Get(c.Admin + "/config/apps/tls/automation/on_demand/ask")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || got != userAsk {
		t.Errorf("Caddy's ask = %q (%v), want the user's %q kept", got, err, userAsk)
	}
	// Without on-demand TLS the previews still route.
	site.TLS = caddy.TLSOff
	if _, err := caddy.New(c.Admin).Apply(ctx, site); err != nil {
		t.Errorf("Apply without TLS next to the user's ask: %v", err)
	}
}

// userConfig writes value at path of Caddy's config through its admin API, as a user's own
// configuration the agent must leave alone.
func userConfig(t *testing.T, admin, method, path string, value any) {
	t.Helper()
	b, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, admin+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}
