package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiClient calls the dashboard API with the session cookie the OAuth sign-in left in its jar,
// as the SPA does (same Origin, JSON bodies).
type apiClient struct {
	base string
	http *http.Client
}

// do sends body as JSON and decodes a 2xx answer into out; any other status is an error
// carrying the API's message.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", a.base)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// registerThroughAPI does what a signed-in user does in the dashboard: add an agent (its token
// shown once, with a cloud-init script), add the project, set its secrets.
func (d *demo) registerThroughAPI(ctx context.Context) (token string, err error) {
	var created struct {
		Agent     struct{ ID int64 } `json:"agent"`
		Token     string             `json:"token"`
		CloudInit string             `json:"cloud_init"`
	}
	if err := d.api.do(ctx, http.MethodPost, "/api/agents", map[string]string{"name": agentName}, &created); err != nil {
		return "", err
	}
	var insts []struct {
		ID      int64  `json:"id"`
		Account string `json:"account"`
	}
	if err := d.api.do(ctx, http.MethodGet, "/api/installations", nil, &insts); err != nil {
		return "", err
	}
	var instID int64
	for _, in := range insts {
		if in.ID == d.inst {
			instID = in.ID
		}
	}
	if instID == 0 {
		return "", fmt.Errorf("GET /api/installations does not list installation %d: %+v", d.inst, insts)
	}
	var repos []struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
	}
	if err := d.api.do(ctx, http.MethodGet, fmt.Sprintf("/api/installations/%d/repositories", instID), nil, &repos); err != nil {
		return "", err
	}
	var repoID int64
	for _, r := range repos {
		if r.FullName == demoRepo {
			repoID = r.ID
		}
	}
	if repoID == 0 {
		return "", fmt.Errorf("GET /api/installations/%d/repositories does not list %s", instID, demoRepo)
	}
	var project struct {
		ID int64 `json:"id"`
	}
	body := map[string]any{"installation_id": instID, "repo_id": repoID, "name": "hello", "deploy_branch": demoBranch, "agent_id": created.Agent.ID}
	if err := d.api.do(ctx, http.MethodPost, "/api/projects", body, &project); err != nil {
		return "", err
	}
	if d.project, err = d.st.ProjectByID(ctx, project.ID); err != nil {
		return "", err
	}
	if d.agentRow, err = d.st.AgentByID(ctx, created.Agent.ID); err != nil {
		return "", err
	}
	lines := strings.Count(created.CloudInit, "\n")
	d.out.step("api", "POST /api/agents -> token shown once and a %d-line cloud-init script; POST /api/projects -> project #%d", lines, project.ID)
	return created.Token, nil
}

// putSecret sets a project secret the way the dashboard does when the API is served, else
// through the store.
func (d *demo) putSecret(ctx context.Context, scope, key, value string) error {
	if d.api != nil {
		path := fmt.Sprintf("/api/projects/%d/secrets/%s/%s", d.project.ID, url.PathEscape(scope), url.PathEscape(key))
		return d.api.do(ctx, http.MethodPut, path, map[string]string{"value": value}, nil)
	}
	_, err := d.secretsService().Put(ctx, d.project.ID, scope, key, []byte(value))
	return err
}
