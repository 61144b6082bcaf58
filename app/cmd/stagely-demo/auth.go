package main

import (
	"context"
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
	resp, err := d.startSignIn(ctx, client)
	if err != nil {
		return false, fmt.Errorf("probe: %w", err)
	}
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
	if _, err := d.startSignIn(ctx, client); err != nil {
		return nil, fmt.Errorf("sign in through githubsim's OAuth: %w", err)
	}
	var me struct {
		Login string `json:"login"`
	}
	api := &apiClient{base: d.serverURL, http: client}
	if err := api.do(ctx, http.MethodGet, "/api/me", nil, &me); err != nil {
		return nil, fmt.Errorf("after the OAuth round trip, want a session: %w", err)
	}
	if me.Login != demoLogin {
		return nil, fmt.Errorf("signed in as %q, want %q", me.Login, demoLogin)
	}
	d.out.step("sign-in", "OAuth through githubsim as %s: session cookie set, /api/me answers (%s)", me.Login, since(t0))
	return client, nil
}

// startSignIn asks the server for /auth/github/login, as the dashboard's button does; client
// decides whether the redirects to GitHub and back are followed.
func (d *demo) startSignIn(ctx context.Context, client *http.Client) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.serverURL+"/auth/github/login", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /auth/github/login: %w", err)
	}
	resp.Body.Close()
	return resp, nil
}
