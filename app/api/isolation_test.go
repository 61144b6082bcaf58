package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Every one of alice's things is, for bob, exactly as if it did not exist.
func TestIsolation_AnotherUsersResourcesAre404LikeMissingOnes(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	ctx := context.Background()
	bobInst, bobRepo := e.bobWithRepo("bob/app")

	var ap, bp project
	var aa, ba agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "alice-box"}, &aa)
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "agent_id": aa.Agent.ID}, &ap)
	e.must(200, "PUT", fmt.Sprintf("/api/projects/%d/secrets/global/DB_PASSWORD", ap.ID), "alice", map[string]any{"value": "alice-only-value-93xq"}, nil)
	e.must(200, "PUT", fmt.Sprintf("/api/projects/%d/secrets/global/DB_PASSWORD?environment=preview", ap.ID), "alice", map[string]any{"value": "alice-preview-value-71kd"}, nil)
	e.must(200, "PATCH", fmt.Sprintf("/api/projects/%d", ap.ID), "alice", map[string]any{"previews_enabled": true, "preview_agent_id": aa.Agent.ID}, nil)
	e.must(201, "POST", "/api/agents", "bob", map[string]any{"name": "bob-box"}, &ba)
	e.must(201, "POST", "/api/projects", "bob", map[string]any{"installation_id": bobInst, "repo_id": bobRepo}, &bp)
	aliceHash := func() string {
		a, err := e.st.AgentByID(ctx, aa.Agent.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.TokenHash
	}
	hashBefore := aliceHash()

	const missing = 987654321
	tests := []struct {
		name         string
		method, path string
		body         any
	}{
		{"get project", "GET", "/api/projects/%d", nil},
		{"patch project branch", "PATCH", "/api/projects/%d", map[string]any{"deploy_branch": "hijack"}},
		{"patch project agent", "PATCH", "/api/projects/%d", `{"agent_id": null}`},
		{"delete project", "DELETE", "/api/projects/%d", nil},
		{"list secrets", "GET", "/api/projects/%d/secrets", nil},
		{"put secret", "PUT", "/api/projects/%d/secrets/global/DB_PASSWORD", map[string]any{"value": "bob-was-here"}},
		{"delete secret", "DELETE", "/api/projects/%d/secrets/global/DB_PASSWORD", nil},
		{"put preview secret", "PUT", "/api/projects/%d/secrets/global/DB_PASSWORD?environment=preview", map[string]any{"value": "bob-was-here"}},
		{"delete preview secret", "DELETE", "/api/projects/%d/secrets/global/DB_PASSWORD?environment=preview", nil},
		{"share secret with previews", "PATCH", "/api/projects/%d/secrets/global/DB_PASSWORD", map[string]any{"share_with_previews": true}},
		{"import .env", "POST", "/api/projects/%d/secrets/import", map[string]any{"dotenv": "DB_PASSWORD=bob-was-here\n"}},
		{"import .env into previews", "POST", "/api/projects/%d/secrets/import?environment=preview", map[string]any{"dotenv": "DB_PASSWORD=bob-was-here\n"}},
		{"patch project previews switch", "PATCH", "/api/projects/%d", map[string]any{"previews_enabled": false}},
		{"patch project preview agent", "PATCH", "/api/projects/%d", `{"preview_agent_id": null}`},
		{"list previews", "GET", "/api/projects/%d/previews", nil},
		{"list deployments", "GET", "/api/projects/%d/deployments", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs := e.do(tt.method, fmt.Sprintf(tt.path, ap.ID), "bob", tt.body)
			none := e.do(tt.method, fmt.Sprintf(tt.path, missing), "bob", tt.body)
			if theirs.status != 404 || none.status != 404 {
				t.Fatalf("status %d for alice's project, %d for a missing one; want 404 for both: %s", theirs.status, none.status, theirs.body)
			}
			a := strings.ReplaceAll(string(theirs.body), fmt.Sprint(ap.ID), "N")
			b := strings.ReplaceAll(string(none.body), fmt.Sprint(missing), "N")
			if a != b {
				t.Errorf("404 for alice's project differs from a missing one:\n%s\n%s", a, b)
			}
		})
	}
	agentTests := []struct {
		name         string
		method, path string
		body         any
	}{
		{"rotate agent token", "POST", "/api/agents/%d/rotate-token", nil},
		{"delete agent", "DELETE", "/api/agents/%d", nil},
		{"link alice's agent to bob's project", "PATCH", fmt.Sprintf("/api/projects/%d", bp.ID), map[string]any{"agent_id": 0}},
		{"make alice's agent bob's preview agent", "PATCH", fmt.Sprintf("/api/projects/%d", bp.ID), map[string]any{"previews_enabled": true, "preview_agent_id": 0}},
		{"create a project with alice's agent", "POST", "/api/projects", map[string]any{"installation_id": bobInst, "repo_id": bobRepo, "name": "x", "deploy_branch": "x", "agent_id": 0}},
	}
	for _, tt := range agentTests {
		t.Run(tt.name, func(t *testing.T) {
			withID := func(id int64) (string, any) {
				path := tt.path
				if strings.Contains(path, "%d") {
					path = fmt.Sprintf(path, id)
				}
				body := tt.body
				if m, ok := body.(map[string]any); ok {
					c := map[string]any{}
					// The agent id fields (0 in the table) name the agent under test.
					for k, v := range m {
						if v == 0 {
							v = id
						}
						c[k] = v
					}
					body = c
				}
				return path, body
			}
			p1, b1 := withID(aa.Agent.ID)
			p2, b2 := withID(missing)
			theirs, none := e.do(tt.method, p1, "bob", b1), e.do(tt.method, p2, "bob", b2)
			if theirs.status != 404 || none.status != 404 {
				t.Fatalf("status %d for alice's agent, %d for a missing one; want 404 for both: %s", theirs.status, none.status, theirs.body)
			}
			a := strings.ReplaceAll(string(theirs.body), fmt.Sprint(aa.Agent.ID), "N")
			b := strings.ReplaceAll(string(none.body), fmt.Sprint(missing), "N")
			if a != b {
				t.Errorf("404 for alice's agent differs from a missing one:\n%s\n%s", a, b)
			}
		})
	}

	// Bob's lists hold only his own things.
	var projects []project
	e.must(200, "GET", "/api/projects", "bob", nil, &projects)
	if len(projects) != 1 || projects[0].ID != bp.ID || projects[0].Agent != nil || projects[0].PreviewAgent != nil || projects[0].PreviewsEnabled {
		t.Errorf("bob's projects = %+v", projects)
	}
	var agents []agent
	e.must(200, "GET", "/api/agents", "bob", nil, &agents)
	if len(agents) != 1 || agents[0].ID != ba.Agent.ID {
		t.Errorf("bob's agents = %+v", agents)
	}

	// Nothing of alice's changed.
	var after project
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d", ap.ID), "alice", nil, &after)
	if after.DeployBranch != "main" || after.Agent == nil || after.Agent.ID != aa.Agent.ID ||
		!after.PreviewsEnabled || after.PreviewAgent == nil || after.PreviewAgent.ID != aa.Agent.ID {
		t.Errorf("alice's project changed: %+v", after)
	}
	var secrets []secretMeta
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d/secrets", ap.ID), "alice", nil, &secrets)
	if len(secrets) != 2 || secrets[0].CreatedAt != secrets[0].UpdatedAt || secrets[1].CreatedAt != secrets[1].UpdatedAt || secrets[0].ShareWithPreviews {
		t.Errorf("alice's secret changed: %+v", secrets)
	}
	if aliceHash() != hashBefore {
		t.Errorf("alice's agent token was rotated by bob")
	}
	if got := e.revoker.revoked.All(); len(got) != 0 {
		t.Errorf("agents revoked by bob's requests: %v", got)
	}
	for _, body := range e.bodies.All() {
		if strings.Contains(body, "alice-only-value-93xq") || strings.Contains(body, "alice-preview-value-71kd") {
			t.Errorf("a response holds alice's secret value: %s", body)
		}
	}
}

func TestInternalErrors_AreGenericAndLoggedWithAReference(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	p := e.apiProject(w)
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/projects", nil},
		{"GET", fmt.Sprintf("/api/projects/%d", p.ID), nil},
		{"PUT", fmt.Sprintf("/api/projects/%d/secrets/global/KEY", p.ID), map[string]any{"value": "v"}},
		{"POST", "/api/agents", map[string]any{"name": "x"}},
		{"POST", "/api/projects", map[string]any{"installation_id": w.aliceInst, "repo_id": w.webRepo}},
	} {
		res := e.do(r.method, r.path, "alice", r.body)
		if res.status != 500 {
			t.Errorf("%s %s on a closed database = %d, want 500: %s", r.method, r.path, res.status, res.body)
			continue
		}
		ae := decodeError(t, res)
		lower := strings.ToLower(string(res.body))
		for _, leak := range []string{"sql", "database", "closed", "postgres", "store", "pq:"} {
			if strings.Contains(lower, leak) {
				t.Errorf("500 body echoes internals (%q): %s", leak, res.body)
			}
		}
		ref, ok := strings.CutPrefix(ae.Detail, "reference ")
		if !ok || !strings.Contains(e.logs.String(), "reference="+ref) {
			t.Errorf("500 detail %q has no reference found in the log", ae.Detail)
		}
	}
	if !strings.Contains(e.logs.String(), "sql: database is closed") {
		t.Errorf("the log lacks the internal cause:\n%s", e.logs.String())
	}
	// A route that needs no database still answers.
	e.must(200, "GET", "/api/me", "alice", nil, nil)
}
