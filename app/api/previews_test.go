package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/protocol"
)

// secretIDs renders a list as environment:scope/key, with a * for a production secret
// shared with previews.
func secretIDs(list []secretMeta) []string {
	var out []string
	for _, m := range list {
		id := m.Environment + ":" + m.Scope + "/" + m.Key
		if m.ShareWithPreviews {
			id += "*"
		}
		out = append(out, id)
	}
	return out
}

func byKey(ss []protocol.Secret) map[string]string {
	m := map[string]string{}
	for _, s := range ss {
		m[s.Key] = s.Value
	}
	return m
}

func TestSecrets_APreviewSetBesideProductionWithTheAlsoForPreviewsMark(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	ctx := context.Background()
	path := fmt.Sprintf("/api/projects/%d/secrets", p.ID)
	var m secretMeta
	e.must(200, "PUT", path+"/global/DB_URL", "alice", map[string]any{"value": "postgres://prod-Xk81"}, &m)
	if m.Environment != "production" || m.ShareWithPreviews {
		t.Errorf("PUT without environment = %+v, want an unshared production secret", m)
	}
	e.must(200, "PUT", path+"/global/SENTRY_DSN", "alice", map[string]any{"value": "https://dsn-Qq02", "share_with_previews": true}, nil)
	e.must(200, "PUT", path+"/global/DB_URL?environment=preview", "alice", map[string]any{"value": "postgres://preview-Lm44"}, &m)
	if m.Environment != "preview" {
		t.Errorf("PUT ?environment=preview = %+v", m)
	}
	// Replacing a value without the mark keeps it.
	e.must(200, "PUT", path+"/global/SENTRY_DSN", "alice", map[string]any{"value": "https://dsn-Rr03"}, &m)
	if !m.ShareWithPreviews {
		t.Error("replacing a shared secret's value dropped its mark")
	}

	var list []secretMeta
	e.must(200, "GET", path, "alice", nil, &list)
	want := []string{"production:global/DB_URL", "production:global/SENTRY_DSN*", "preview:global/DB_URL"}
	if got := secretIDs(list); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}

	e.must(200, "PATCH", path+"/global/DB_URL", "alice", map[string]any{"share_with_previews": true}, &m)
	if !m.ShareWithPreviews || m.Environment != "production" {
		t.Errorf("PATCH share = %+v", m)
	}
	got, err := e.secrets.ForPreview(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if vals := byKey(got); vals["DB_URL"] != "postgres://preview-Lm44" || vals["SENTRY_DSN"] != "https://dsn-Rr03" || len(vals) != 2 {
		t.Errorf("ForPreview = %v: the preview DB_URL must win over the shared production one", vals)
	}

	refused := []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"a preview secret marked shared", "PUT", path + "/global/X?environment=preview", map[string]any{"value": "v", "share_with_previews": true}, "share_with_previews"},
		{"sharing a preview secret", "PATCH", path + "/global/DB_URL?environment=preview", map[string]any{"share_with_previews": true}, "share_with_previews"},
		{"a PATCH with nothing to change", "PATCH", path + "/global/DB_URL", map[string]any{}, "share_with_previews"},
		{"an unknown set", "PUT", path + "/global/X?environment=staging", map[string]any{"value": "v"}, "environment"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			res := e.must(400, tt.method, tt.path, "alice", tt.body, nil)
			if ae := decodeError(t, res); !slices.Contains(ae.fields(), tt.field) {
				t.Errorf("validations %v do not name %s", ae.fields(), tt.field)
			}
		})
	}
	e.must(404, "PATCH", path+"/global/MISSING", "alice", map[string]any{"share_with_previews": true}, nil)

	e.must(204, "DELETE", path+"/global/DB_URL?environment=preview", "alice", nil, nil)
	e.must(404, "DELETE", path+"/global/DB_URL?environment=preview", "alice", nil, nil)
	e.must(200, "GET", path, "alice", nil, &list)
	if got := secretIDs(list); !slices.Equal(got, []string{"production:global/DB_URL*", "production:global/SENTRY_DSN*"}) {
		t.Errorf("after deleting the preview secret: %v", got)
	}
	for _, body := range e.bodies.All() {
		for _, v := range []string{"prod-Xk81", "dsn-Qq02", "dsn-Rr03", "preview-Lm44"} {
			if strings.Contains(body, v) {
				t.Errorf("a response body holds a secret value: %.200s", body)
			}
		}
	}
}

func TestImportSecrets_StoresAWholeDotenvOrNothingAndNamesEachBadLine(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	ctx := context.Background()
	path := fmt.Sprintf("/api/projects/%d/secrets/import?environment=preview", p.ID)

	bad := "GOOD=ok-Zz11\nthis line has no equals\nexport 9BAD=x\nQ=\"unclosed-Zz12"
	res := e.must(400, "POST", path, "alice", map[string]any{"dotenv": bad}, nil)
	ae := decodeError(t, res)
	if got := ae.fields(); !slices.Equal(got, []string{"line 2", "line 3", "line 4"}) {
		t.Fatalf("validations name %v, want lines 2, 3 and 4: %s", got, res.body)
	}
	if !strings.Contains(ae.Message, "nothing was imported") {
		t.Errorf("message %q does not say nothing was stored", ae.Message)
	}
	if strings.Contains(string(res.body), "Zz1") {
		t.Errorf("the error quotes a value: %s", res.body)
	}
	if metas, _ := e.st.SecretMetas(ctx, p.ID); len(metas) != 0 {
		t.Fatalf("a refused import stored %d secrets", len(metas))
	}

	good := "# preview settings\nexport API_URL=https://api.preview.example.com\nDB_URL=\"postgres://u:p@db/app\"\n\nPEM=\"-----BEGIN-----\\nQUJD\\n-----END-----\"\nNOTE='literal $HOME'\n"
	var list []secretMeta
	e.must(200, "POST", path, "alice", map[string]any{"dotenv": good}, &list)
	if got := secretIDs(list); !slices.Equal(got, []string{"preview:global/API_URL", "preview:global/DB_URL", "preview:global/PEM", "preview:global/NOTE"}) {
		t.Fatalf("imported %v", got)
	}
	got, err := e.secrets.ForPreview(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"API_URL": "https://api.preview.example.com", "DB_URL": "postgres://u:p@db/app",
		"PEM": "-----BEGIN-----\nQUJD\n-----END-----", "NOTE": "literal $HOME"}
	if vals := byKey(got); fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Errorf("ForPreview after import = %q, want %q", vals, want)
	}
	if prod, _ := e.secrets.ForDeploy(ctx, p.ID); len(prod) != 0 {
		t.Errorf("a preview import reached production: %d secrets", len(prod))
	}

	// Into production, for a service scope, marked for previews too.
	e.must(200, "POST", fmt.Sprintf("/api/projects/%d/secrets/import", p.ID), "alice",
		map[string]any{"dotenv": "WORKERS=4\n", "scope": "worker", "share_with_previews": true}, &list)
	if got := secretIDs(list); !slices.Equal(got, []string{"production:worker/WORKERS*"}) {
		t.Errorf("production import = %v", got)
	}
	for _, tt := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"an empty file", map[string]any{"dotenv": "# only a comment\n"}, "dotenv"},
		{"a bad scope", map[string]any{"dotenv": "A=1", "scope": "no such/scope"}, "scope"},
		{"a file over 128 KiB", map[string]any{"dotenv": "A=" + strings.Repeat("x", 130<<10)}, "dotenv"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := e.must(400, "POST", path, "alice", tt.body, nil)
			if ae := decodeError(t, res); !slices.Contains(ae.fields(), tt.field) {
				t.Errorf("validations %v do not name %s", ae.fields(), tt.field)
			}
		})
	}
	for _, body := range e.bodies.All() {
		if strings.Contains(body, "u:p@db") || strings.Contains(body, "QUJD") {
			t.Errorf("a response body holds a secret value: %.200s", body)
		}
	}
}

func TestPatchProject_SwitchesPreviewsAndPicksThePreviewAgent(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	var ag agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "preview-box"}, &ag)
	path := fmt.Sprintf("/api/projects/%d", p.ID)

	var got project
	e.must(200, "GET", path, "alice", nil, &got)
	if got.PreviewsEnabled || got.PreviewAgent != nil {
		t.Fatalf("a new project = %+v, want previews off on its own agent", got)
	}
	e.must(200, "PATCH", path, "alice", map[string]any{"previews_enabled": true}, &got)
	if !got.PreviewsEnabled || got.PreviewAgent != nil {
		t.Errorf("after switching on: %+v", got)
	}
	e.must(200, "PATCH", path, "alice", map[string]any{"preview_agent_id": ag.Agent.ID}, &got)
	if !got.PreviewsEnabled || got.PreviewAgent == nil || got.PreviewAgent.Name != "preview-box" {
		t.Errorf("picking the agent must keep the switch: %+v", got)
	}
	e.must(200, "PATCH", path, "alice", map[string]any{"previews_enabled": false}, &got)
	if got.PreviewsEnabled || got.PreviewAgent == nil {
		t.Errorf("switching off must keep the agent: %+v", got)
	}
	e.must(200, "PATCH", path, "alice", `{"preview_agent_id": null}`, &got)
	if got.PreviewAgent != nil {
		t.Errorf("after null: %+v", got)
	}
	e.must(404, "PATCH", path, "alice", map[string]any{"preview_agent_id": 999999}, nil)
	res := e.must(400, "PATCH", path, "alice", map[string]any{"preview_agent_id": "box"}, nil)
	if ae := decodeError(t, res); !slices.Equal(ae.fields(), []string{"preview_agent_id"}) {
		t.Errorf("validations = %v", ae.fields())
	}
	res = e.must(400, "PATCH", path, "alice", map[string]any{"previews_enabled": "yes"}, nil)
	if ae := decodeError(t, res); !slices.Equal(ae.fields(), []string{"previews_enabled"}) {
		t.Errorf("validations = %v", ae.fields())
	}
}

func TestPreviews_ListsTheProjectsPreviewsRunningAndQueuedFirst(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	ctx := context.Background()
	sha := func(c string) string { return strings.Repeat(c, 40) }
	// The server's pipeline writes these rows (app/deploy); the API only reads them.
	for _, r := range []struct {
		n                int
		state, sha, repo string
		urls, approvedBy string
		stopReason       string
		age              string
	}{
		{1, "stopped", sha("a"), "alice/api", `{}`, "", "pull request closed", "5 hours"},
		{2, "live", sha("b"), "alice/api", `{"web": "https://web--pr-2--api.preview.example.com"}`, "", "", "3 hours"},
		{3, "queued", sha("c"), "alice/api", `{}`, "", "", "2 hours"},
		{4, "awaiting_approval", sha("d"), "mallory/api", `{}`, "", "", "1 hour"},
		{5, "deploying", sha("e"), "carol/api", `{}`, "alice", "", "4 hours"},
	} {
		if _, err := e.st.DB().ExecContext(ctx, `
			INSERT INTO previews (project_id, pr_number, head_sha, head_ref, head_repo_full_name, author_login,
			                      state, urls, approved_by, stop_reason, updated_at)
			VALUES ($1, $2, $3, 'feature', $4, 'dev', $5, $6, $7, $8, now() - $9::interval)`,
			p.ID, r.n, r.sha, r.repo, r.state, r.urls, r.approvedBy, r.stopReason, r.age); err != nil {
			t.Fatal(err)
		}
	}
	var list []struct {
		PRNumber       int               `json:"pr_number"`
		State          string            `json:"state"`
		HeadSHA        string            `json:"head_sha"`
		Fork           bool              `json:"fork"`
		URLs           map[string]string `json:"urls"`
		ApprovedBy     string            `json:"approved_by"`
		StopReason     string            `json:"stop_reason"`
		PullRequestURL string            `json:"pull_request_url"`
		LastDeployedAt *string           `json:"last_deployed_at"`
	}
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d/previews", p.ID), "alice", nil, &list)
	var order []string
	for _, v := range list {
		order = append(order, fmt.Sprintf("#%d %s", v.PRNumber, v.State))
	}
	want := []string{"#4 awaiting_approval", "#3 queued", "#2 live", "#5 deploying", "#1 stopped"}
	if !slices.Equal(order, want) {
		t.Fatalf("previews %v, want %v (not stopped first, newest change first)", order, want)
	}
	live, fork, approved, stopped := list[2], list[0], list[3], list[4]
	if live.URLs["web"] != "https://web--pr-2--api.preview.example.com" || live.Fork || live.HeadSHA != sha("b") ||
		!strings.HasSuffix(live.PullRequestURL, "/alice/api/pull/2") {
		t.Errorf("live preview = %+v", live)
	}
	if !fork.Fork || !approved.Fork || approved.ApprovedBy != "alice" {
		t.Errorf("fork previews = %+v, %+v", fork, approved)
	}
	if stopped.StopReason != "pull request closed" || stopped.LastDeployedAt != nil {
		t.Errorf("stopped preview = %+v", stopped)
	}
}
