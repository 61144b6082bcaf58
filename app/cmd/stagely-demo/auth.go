package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"time"
)

// probeAuth reports whether the server offers GitHub sign-in: /auth/github/login redirects to
// githubsim's authorize page.
func (d *demo) probeAuth(ctx context.Context) (bool, error) {
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.serverURL+"/auth/github/login", nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("probe /auth/github/login: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 3 && strings.HasPrefix(resp.Header.Get("Location"), d.ep.Web+"/login/oauth/authorize"), nil
}

// signInOAuth walks the OAuth round trip a browser makes (server -> githubsim authorize ->
// server callback) and checks that the session it ends with knows the demo user.
func (d *demo) signInOAuth(ctx context.Context) (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.serverURL+"/auth/github/login", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign in through githubsim's OAuth: %w", err)
	}
	resp.Body.Close()
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, d.serverURL+"/api/me", nil)
	if err != nil {
		return nil, err
	}
	resp, err = client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /api/me after signing in: %w", err)
	}
	defer resp.Body.Close()
	var me struct {
		Login string `json:"login"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/me after the OAuth round trip answered HTTP %d, want 200 with a session", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil {
		return nil, fmt.Errorf("decode /api/me: %w", err)
	}
	if me.Login != demoLogin {
		return nil, fmt.Errorf("signed in as %q, want %q", me.Login, demoLogin)
	}
	d.out.step("sign-in", "OAuth through githubsim as %s: session cookie set, /api/me answers (%s)", me.Login, since(t0))
	return client, nil
}
