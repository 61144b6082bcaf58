package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/api"
	"github.com/stagely/stagely/store"
)

func TestRoutes_SignedOutGets401InTheErrorShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/me"}, {"GET", "/api/installations"}, {"GET", "/api/installations/1/repositories"},
		{"GET", "/api/projects"}, {"POST", "/api/projects"}, {"GET", "/api/projects/1"},
		{"PATCH", "/api/projects/1"}, {"DELETE", "/api/projects/1"}, {"GET", "/api/projects/1/secrets"},
		{"PUT", "/api/projects/1/secrets/global/K"}, {"DELETE", "/api/projects/1/secrets/global/K"},
		{"GET", "/api/projects/1/deployments"}, {"GET", "/api/agents"}, {"POST", "/api/agents"},
		{"POST", "/api/agents/1/rotate-token"}, {"DELETE", "/api/agents/1"}, {"PATCH", "/api/agents/1"},
	} {
		res := e.do(r.method, r.path, "", nil)
		if res.status != http.StatusUnauthorized {
			t.Errorf("%s %s signed out = %d, want 401", r.method, r.path, res.status)
			continue
		}
		decodeError(t, res)
	}
}

func TestNotFound_UnknownAPIRouteAnswersInTheErrorShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.must(404, "GET", "/api/projectz", "", nil, nil)
	if msg := decodeError(t, res).Message; !strings.Contains(msg, "/api/projectz") {
		t.Errorf("message %q does not name the path", msg)
	}
}

func TestMe_ReturnsTheSignedInUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.signIn("alice")
	var got struct {
		ID        int64  `json:"id"`
		Login     string `json:"login"`
		Name      string `json:"name"`
		AvatarURL string `json:"avatar_url"`
	}
	res := e.must(200, "GET", "/api/me", "alice", nil, &got)
	if got.ID != s.user.ID || got.Login != "alice" || got.Name != "ALICE" || got.AvatarURL != "https://avatars.example/alice" {
		t.Errorf("GET /api/me = %+v", got)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", res.header.Get("Cache-Control"))
	}
}

func TestInstallations_ListsWhatTheUserSeesOnGitHub(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	e.signIn("bob")
	bobInst := e.sim.AddInstallation("bob")

	var got []struct {
		ID          int64  `json:"id"`
		Account     string `json:"account"`
		AccountType string `json:"account_type"`
	}
	e.must(200, "GET", "/api/installations", "alice", nil, &got)
	if len(got) != 2 || got[0].ID != w.aliceInst || got[0].Account != "alice" || got[0].AccountType != "User" ||
		got[1].ID != w.orgInst || got[1].Account != "acme" || got[1].AccountType != "Organization" {
		t.Errorf("alice's installations = %+v", got)
	}
	e.must(200, "GET", "/api/installations", "bob", nil, &got)
	if len(got) != 1 || got[0].ID != bobInst {
		t.Errorf("bob's installations = %+v, want only %d", got, bobInst)
	}
	if n := len(e.sim.CallsMatching("GET", "/user/installations")); n != 2 {
		t.Errorf("GitHub was asked %d times for /user/installations, want 2", n)
	}
}

func TestRepositories_ComeFromGitHubWithDefaultBranch(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	e.signIn("bob")
	var got []struct {
		ID            int64  `json:"id"`
		FullName      string `json:"full_name"`
		DefaultBranch string `json:"default_branch"`
		Private       bool   `json:"private"`
	}
	e.must(200, "GET", fmt.Sprintf("/api/installations/%d/repositories", w.aliceInst), "alice", nil, &got)
	if len(got) != 2 {
		t.Fatalf("repositories = %+v, want 2", got)
	}
	byName := map[string]int{}
	for i, r := range got {
		byName[r.FullName] = i
	}
	if r := got[byName["alice/My.Web-App"]]; r.ID != w.webRepo || r.DefaultBranch != "trunk" || !r.Private {
		t.Errorf("alice/My.Web-App = %+v", r)
	}
	// Bob cannot see alice's installation on GitHub, so it does not exist for him.
	res := e.must(404, "GET", fmt.Sprintf("/api/installations/%d/repositories", w.aliceInst), "bob", nil, nil)
	decodeError(t, res)
	e.must(404, "GET", "/api/installations/abc/repositories", "alice", nil, nil)
}

func TestGitHub_RefusedOrMissingTokenAsksToSignInAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn("alice")
	e.mu.Lock()
	s := e.sessions["alice"]
	s.token = "ghu_revoked0000000000000000000000000000"
	e.sessions["alice"] = s
	s.token = ""
	e.sessions["carol"] = s
	e.mu.Unlock()
	for _, who := range []string{"alice", "carol"} {
		res := e.must(401, "GET", "/api/installations", who, nil, nil)
		if msg := decodeError(t, res).Message; !strings.Contains(msg, "sign in again") {
			t.Errorf("%s: message %q does not say to sign in again", who, msg)
		}
	}
}

func TestCreateProject_TakesRepositoryFactsFromGitHubAndDefaults(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	ctx := context.Background()

	var p project
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.webRepo}, &p)
	if p.Name != "my-web-app" || p.DeployBranch != "trunk" || p.RepoFullName != "alice/My.Web-App" ||
		p.RepoID != w.webRepo || p.InstallationID != w.aliceInst || p.Agent != nil ||
		!strings.HasPrefix(p.PublicID, "proj_") || !strings.HasPrefix(p.ComposeProject, "stagely-") {
		t.Errorf("created project = %+v", p)
	}
	for _, ts := range []string{p.CreatedAt, p.UpdatedAt} {
		if tm, err := time.Parse(time.RFC3339, ts); err != nil || tm.Location() != time.UTC {
			t.Errorf("timestamp %q is not RFC 3339 UTC", ts)
		}
	}
	inst, err := e.st.InstallationByGitHubID(ctx, w.aliceInst)
	if err != nil || inst.AccountLogin != "alice" || inst.AccountType != "User" || !inst.Active() {
		t.Errorf("installation row = %+v, %v", inst, err)
	}

	// Explicit name, branch and agent; an organization's installation the user is a member of.
	var ag agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "prod"}, &ag)
	var q project
	e.must(201, "POST", "/api/projects", "alice", map[string]any{
		"installation_id": w.orgInst, "repo_id": w.orgRepo, "name": "site_prod", "deploy_branch": "release/v2", "agent_id": ag.Agent.ID,
	}, &q)
	if q.Name != "site_prod" || q.DeployBranch != "release/v2" || q.Agent == nil || q.Agent.ID != ag.Agent.ID ||
		q.Agent.Name != "prod" || q.Agent.Status != "offline" || q.InstallationID != w.orgInst {
		t.Errorf("created project = %+v", q)
	}

	var list []project
	e.must(200, "GET", "/api/projects", "alice", nil, &list)
	if len(list) != 2 || list[0].Name != "my-web-app" || list[1].Name != "site_prod" || list[1].Agent == nil {
		t.Errorf("GET /api/projects = %+v", list)
	}
	var one project
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d", q.ID), "alice", nil, &one)
	if one.ID != q.ID || one.Name != q.Name || one.Agent == nil || one.Agent.ID != ag.Agent.ID {
		t.Errorf("GET project = %+v, want %+v", one, q)
	}
	audits, _ := e.st.AuditByUser(ctx, w.alice.user.ID, 10)
	if !slices.ContainsFunc(audits, func(a store.AuditEntry) bool { return a.Action == "project.create" }) {
		t.Errorf("no project.create audit entry: %+v", audits)
	}
}

func TestCreateProject_RefusesWhatTheUserCannotSeeOnGitHub(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	_, bobRepo := e.bobWithRepo("bob/secret")
	tests := []struct {
		name       string
		who        string
		inst, repo int64
	}{
		{"someone else's installation", "bob", w.aliceInst, w.webRepo},
		{"a repository of another installation", "alice", w.aliceInst, w.orgRepo},
		{"a repository the user cannot see through a visible installation", "alice", w.aliceInst, bobRepo},
		{"an installation that does not exist", "alice", 99999999, w.webRepo},
	}
	for _, tt := range tests {
		res := e.do("POST", "/api/projects", tt.who, map[string]any{"installation_id": tt.inst, "repo_id": tt.repo})
		if res.status != 404 {
			t.Errorf("%s: status %d, want 404: %s", tt.name, res.status, res.body)
		}
	}
	if _, err := e.st.InstallationByGitHubID(context.Background(), w.aliceInst); !store.IsNotFound(err) {
		t.Errorf("a refused request recorded the installation: %v", err)
	}
}

func TestCreateProject_SameBranchOrNameTwiceIs409(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	e.apiProject(w)
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"same repository, branch and root directory", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "name": "other"}, "root_directory"},
		{"same root directory spelled another way", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "name": "other", "root_directory": "./"}, "root_directory"},
		{"same name", map[string]any{"installation_id": w.aliceInst, "repo_id": w.webRepo, "name": "api"}, "name"},
	}
	for _, tt := range tests {
		res := e.must(409, "POST", "/api/projects", "alice", tt.body, nil)
		if got := decodeError(t, res).fields(); !slices.Equal(got, []string{tt.field}) {
			t.Errorf("%s: validations %v, want [%s]", tt.name, got, tt.field)
		}
	}
	// Another branch of the same repository is another project.
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "name": "api-staging", "deploy_branch": "staging"}, nil)
}

func TestProjects_SeveralOnOneBranchInRootDirectoriesOfTheirOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.aliceWorld()
	root := e.apiProject(w)
	if root.RootDirectory != "" {
		t.Fatalf("a project created without root_directory deploys from %q", root.RootDirectory)
	}
	var sub project
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "name": "api-worker", "root_directory": "./services/worker/"}, &sub)
	if sub.RootDirectory != "services/worker" || sub.DeployBranch != root.DeployBranch {
		t.Fatalf("second project: %+v", sub)
	}
	path := fmt.Sprintf("/api/projects/%d", sub.ID)
	var got project
	e.must(200, "PATCH", path, "alice", map[string]any{"root_directory": "services/jobs"}, &got)
	if got.RootDirectory != "services/jobs" {
		t.Fatalf("after moving: %+v", got)
	}
	res := e.must(409, "PATCH", path, "alice", map[string]any{"root_directory": ""}, nil)
	if f := decodeError(t, res).fields(); !slices.Equal(f, []string{"root_directory"}) {
		t.Fatalf("moving onto the other project's root directory: validations %v", f)
	}
	e.must(200, "GET", path, "alice", nil, &got)
	if got.RootDirectory != "services/jobs" {
		t.Fatalf("a refused move changed the root directory to %q", got.RootDirectory)
	}
}

func TestValidation_ErrorsNameTheFieldsToFix(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	projectPath := fmt.Sprintf("/api/projects/%d", p.ID)
	big := `{"name": "` + strings.Repeat("a", 300<<10) + `"}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantFields []string
	}{
		{"project without ids", "POST", "/api/projects", `{}`, 400, []string{"installation_id", "repo_id"}},
		{"project with bad name and branch", "POST", "/api/projects", map[string]any{"installation_id": 1, "repo_id": 2, "name": "Bad Name", "deploy_branch": "a..b"}, 400, []string{"name", "deploy_branch"}},
		{"project name too long", "POST", "/api/projects", map[string]any{"installation_id": 1, "repo_id": 2, "name": strings.Repeat("a", 64)}, 400, []string{"name"}},
		{"project branch given as a ref", "POST", "/api/projects", map[string]any{"installation_id": 1, "repo_id": 2, "deploy_branch": "refs/heads/main"}, 400, []string{"deploy_branch"}},
		{"project with negative agent", "POST", "/api/projects", map[string]any{"installation_id": 1, "repo_id": 2, "agent_id": -1}, 400, []string{"agent_id"}},
		{"unknown field", "POST", "/api/projects", `{"installation_id": 1, "repo_id": 2, "repo": "x/y"}`, 400, []string{"repo"}},
		{"wrong type", "POST", "/api/projects", `{"installation_id": "1", "repo_id": 2}`, 400, []string{"installation_id"}},
		{"not JSON", "POST", "/api/projects", `{"installation_id": `, 400, nil},
		{"broken JSON", "POST", "/api/projects", `{"installation_id" 1}`, 400, nil},
		{"empty body", "POST", "/api/agents", ``, 400, nil},
		{"array instead of object", "POST", "/api/agents", `[1]`, 400, nil},
		{"two JSON values", "POST", "/api/agents", `{"name": "a"} {"name": "b"}`, 400, nil},
		{"body over 256 KiB", "POST", "/api/agents", big, 413, nil},
		{"agent without name", "POST", "/api/agents", `{"name": "   "}`, 400, []string{"name"}},
		{"agent name over 100 characters", "POST", "/api/agents", map[string]any{"name": strings.Repeat("é", 101)}, 400, []string{"name"}},
		{"agent name with control characters", "POST", "/api/agents", map[string]any{"name": "a\x00b"}, 400, []string{"name"}},
		{"patch with nothing", "PATCH", projectPath, `{}`, 400, nil},
		{"patch with bad agent id", "PATCH", projectPath, `{"agent_id": "x"}`, 400, []string{"agent_id"}},
		{"patch with bad branch", "PATCH", projectPath, `{"deploy_branch": "feature branch"}`, 400, []string{"deploy_branch"}},
		{"patch with a root directory going up", "PATCH", projectPath, `{"root_directory": "services/../.."}`, 400, []string{"root_directory"}},
		{"project with an absolute root directory", "POST", "/api/projects", map[string]any{"installation_id": 1, "repo_id": 2, "root_directory": "/srv/api"}, 400, []string{"root_directory"}},
		{"secret with bad key", "PUT", projectPath + "/secrets/global/1BAD", `{"value": "v"}`, 400, []string{"key"}},
		{"secret with bad scope", "PUT", projectPath + "/secrets/-web/KEY", `{"value": "v"}`, 400, []string{"scope"}},
		{"secret without value", "PUT", projectPath + "/secrets/global/KEY", `{}`, 400, []string{"value"}},
		{"secret value over 64 KiB", "PUT", projectPath + "/secrets/global/KEY", map[string]any{"value": strings.Repeat("v", 64<<10+1)}, 400, []string{"value"}},
		{"secret with everything wrong", "PUT", projectPath + "/secrets/.x/a-b", `{"value": null}`, 400, []string{"scope", "key", "value"}},
	}
	for _, tt := range tests {
		res := e.do(tt.method, tt.path, "alice", tt.body)
		if res.status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d: %.300s", tt.name, res.status, tt.wantStatus, res.body)
			continue
		}
		ae := decodeError(t, res)
		if got := ae.fields(); !slices.Equal(got, tt.wantFields) {
			t.Errorf("%s: validation fields %v, want %v (%s)", tt.name, got, tt.wantFields, res.body)
		}
		for _, v := range ae.Validations {
			if v.Message == "" {
				t.Errorf("%s: field %s has no message", tt.name, v.Field)
			}
		}
	}
	// Nothing of the refused requests was written.
	var secrets []secretMeta
	e.must(200, "GET", projectPath+"/secrets", "alice", nil, &secrets)
	var agents []agent
	e.must(200, "GET", "/api/agents", "alice", nil, &agents)
	if len(secrets) != 0 || len(agents) != 0 {
		t.Errorf("refused requests left %d secrets and %d agents", len(secrets), len(agents))
	}
}

func TestPatchProject_LinksAndUnlinksAnAgentAndChangesTheBranch(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	var ag agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "box"}, &ag)
	path := fmt.Sprintf("/api/projects/%d", p.ID)

	var got project
	e.must(200, "PATCH", path, "alice", map[string]any{"agent_id": ag.Agent.ID}, &got)
	if got.Agent == nil || got.Agent.ID != ag.Agent.ID || got.DeployBranch != "main" {
		t.Errorf("after linking: %+v", got)
	}
	e.must(200, "PATCH", path, "alice", map[string]any{"deploy_branch": "prod"}, &got)
	if got.Agent == nil || got.DeployBranch != "prod" {
		t.Errorf("changing the branch alone must keep the agent: %+v", got)
	}
	e.must(200, "PATCH", path, "alice", `{"agent_id": null}`, &got)
	if got.Agent != nil || got.DeployBranch != "prod" {
		t.Errorf("after unlinking: %+v", got)
	}
	e.must(404, "PATCH", path, "alice", map[string]any{"agent_id": 999999}, nil)
}

func TestDeleteProject_TakesItsSecretsAndDeploymentsAlong(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	ctx := context.Background()
	path := fmt.Sprintf("/api/projects/%d", p.ID)
	e.must(200, "PUT", path+"/secrets/global/TOKEN", "alice", map[string]any{"value": "x"}, nil)
	if _, err := e.st.CreateDeployment(ctx, store.NewDeployment{ProjectID: p.ID, SHA: strings.Repeat("a", 40), Ref: "refs/heads/main", Trigger: store.TriggerPush}); err != nil {
		t.Fatal(err)
	}
	res := e.must(204, "DELETE", path, "alice", nil, nil)
	if len(res.body) != 0 {
		t.Errorf("204 with a body: %s", res.body)
	}
	e.must(404, "GET", path, "alice", nil, nil)
	e.must(404, "DELETE", path, "alice", nil, nil)
	if rows, _ := e.st.SealedSecrets(ctx, p.ID); len(rows) != 0 {
		t.Errorf("%d secrets outlived their project", len(rows))
	}
	if ds, _ := e.st.DeploymentsByProject(ctx, p.ID, 10); len(ds) != 0 {
		t.Errorf("%d deployments outlived their project", len(ds))
	}
}

func TestSecrets_WriteOnlyPutListReplaceDelete(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	ctx := context.Background()
	p := e.apiProject(w)
	path := fmt.Sprintf("/api/projects/%d/secrets", p.ID)
	values := map[string]string{
		"global/DATABASE_URL": "postgres://user:Sup3rS3cretPassw0rd@db/app",
		"web/API_KEY":         "sk_live_Zx9QkTvU81",
		"worker/PEM":          "-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END KEY-----\n",
		"global/EMPTY":        "",
	}
	for sk, v := range values {
		var m secretMeta
		e.must(200, "PUT", path+"/"+sk, "alice", map[string]any{"value": v}, &m)
		if m.Scope+"/"+m.Key != sk || m.CreatedAt == "" || m.UpdatedAt == "" {
			t.Errorf("PUT %s = %+v", sk, m)
		}
	}
	replacement := "postgres://user:R0tatedPassw0rd@db/app"
	e.must(200, "PUT", path+"/global/DATABASE_URL", "alice", map[string]any{"value": replacement}, nil)

	var list []secretMeta
	res := e.must(200, "GET", path, "alice", nil, &list)
	var keys []string
	for _, m := range list {
		keys = append(keys, m.Scope+"/"+m.Key)
	}
	if want := []string{"global/DATABASE_URL", "global/EMPTY", "web/API_KEY", "worker/PEM"}; !slices.Equal(keys, want) {
		t.Errorf("listed %v, want %v", keys, want)
	}
	if strings.Contains(string(res.body), "value") {
		t.Errorf("the list mentions values: %s", res.body)
	}

	e.must(204, "DELETE", path+"/web/API_KEY", "alice", nil, nil)
	e.must(404, "DELETE", path+"/web/API_KEY", "alice", nil, nil)
	e.must(200, "GET", path, "alice", nil, &list)
	if len(list) != 3 {
		t.Errorf("after delete: %+v", list)
	}

	audits, err := e.st.AuditByUser(ctx, w.alice.user.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	var puts, deletes int
	for _, a := range audits {
		switch a.Action {
		case "secret.put":
			puts++
		case "secret.delete":
			deletes++
		}
		for _, v := range append(mapValues(values), replacement) {
			if v != "" && strings.Contains(string(a.Detail), v) {
				t.Errorf("audit entry %s holds a secret value: %s", a.Action, a.Detail)
			}
		}
	}
	if puts != 5 || deletes != 1 {
		t.Errorf("audit has %d secret.put and %d secret.delete, want 5 and 1", puts, deletes)
	}
	for _, body := range e.bodies.All() {
		for _, v := range append(mapValues(values), replacement) {
			if len(v) > 3 && strings.Contains(body, v) || strings.Contains(body, "QUJDREVGR0hJSktMTU5PUA") {
				t.Errorf("a response body holds a secret value: %.200s", body)
			}
		}
	}
	if strings.Contains(e.logs.String(), "Sup3rS3cret") || strings.Contains(e.logs.String(), "R0tated") {
		t.Errorf("the log holds a secret value")
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestDeployments_NewestFirstAtMost50WithCheckRunLinks(t *testing.T) {
	t.Parallel()
	e, p := newAliceProject(t)
	ctx := context.Background()
	var last store.Deployment
	for i := range 52 {
		d, err := e.st.CreateDeployment(ctx, store.NewDeployment{ProjectID: p.ID, SHA: fmt.Sprintf("%040x", i+1), Ref: "refs/heads/main", Trigger: store.TriggerPush})
		if err != nil {
			t.Fatal(err)
		}
		last = d
	}
	checkRun := int64(777)
	if err := e.st.SetDeploymentGitHubIDs(ctx, last.ID, &checkRun, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := e.st.FinishDeployment(ctx, last.ID, store.DeploymentFailure, "compose up failed", nil, now); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		ID          int64   `json:"id"`
		SHA         string  `json:"sha"`
		Ref         string  `json:"ref"`
		Trigger     string  `json:"trigger"`
		Status      string  `json:"status"`
		Error       string  `json:"error"`
		CreatedAt   string  `json:"created_at"`
		StartedAt   *string `json:"started_at"`
		FinishedAt  *string `json:"finished_at"`
		CheckRunURL *string `json:"check_run_url"`
	}
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d/deployments", p.ID), "alice", nil, &got)
	if len(got) != 50 {
		t.Fatalf("listed %d deployments, want 50", len(got))
	}
	first := got[0]
	wantURL := e.sim.Endpoints().Web + "/alice/api/runs/777"
	if first.ID != last.ID || first.Status != "failure" || first.Error != "compose up failed" || first.Trigger != "push" ||
		first.FinishedAt == nil || first.StartedAt != nil || first.CheckRunURL == nil || *first.CheckRunURL != wantURL {
		t.Errorf("newest deployment = %+v (check run URL want %s)", first, wantURL)
	}
	if got[1].CheckRunURL != nil || got[1].FinishedAt != nil || got[1].Status != "queued" {
		t.Errorf("a queued deployment = %+v", got[1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID >= got[i-1].ID {
			t.Fatalf("not newest first at %d: %d then %d", i, got[i-1].ID, got[i].ID)
		}
	}
}

func TestAgents_TokensAreHashedAtTheStoredCostByDefault(t *testing.T) {
	t.Parallel()
	e := newEnvMinting(t, 0)
	e.signIn("alice")
	var created agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "prod-1"}, &created)
	wantCost := func(step string) {
		t.Helper()
		row, err := e.st.AgentByID(context.Background(), created.Agent.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cost, err := bcrypt.Cost([]byte(row.BootstrapHash)); err != nil || cost != agenttoken.Cost {
			t.Errorf("%s token hashed at cost %d (%v), want agenttoken.Cost %d", step, cost, err, agenttoken.Cost)
		}
	}
	wantCost("created")
	e.must(200, "POST", fmt.Sprintf("/api/agents/%d/rotate-token", created.Agent.ID), "alice", nil, nil)
	wantCost("rotated")
}

// The token the API shows is the single-use bootstrap token; the long-lived one comes from
// the hub at the agent's first connection (app/hub/bootstrap_test.go).
func TestAgents_TokenShownOnceRotatedAndRevoked(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	ctx := context.Background()

	var created agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "  prod-1  "}, &created)
	if created.Agent.Name != "prod-1" || created.Agent.Status != "offline" || created.Agent.LastHeartbeat != nil {
		t.Errorf("created agent = %+v", created.Agent)
	}
	if id, err := agenttoken.AgentID(created.Token); err != nil || id != created.Agent.ID {
		t.Fatalf("token names agent %d (%v), want %d", id, err, created.Agent.ID)
	}
	row, err := e.st.AgentByID(ctx, created.Agent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !agenttoken.IsBootstrap(created.Token) {
		t.Errorf("the shown token is not a bootstrap token (stgb_...)")
	}
	if err := agenttoken.Verify(created.Token, row.BootstrapHash); err != nil || row.TokenHash != "" {
		t.Errorf("the stored bootstrap hash does not verify the shown token (%v), or a long-lived hash exists already", err)
	}
	wantWaiting(t, created.Agent, time.Now().Add(api.DefaultBootstrapTTL))
	if !strings.HasPrefix(created.CloudInit, "#cloud-config\n") || !strings.Contains(created.CloudInit, created.Token) ||
		!strings.Contains(created.CloudInit, serverURL) || !strings.Contains(created.CloudInit, "/install.sh") {
		t.Errorf("cloud_init lacks the header, token, server URL or installer:\n%s", created.CloudInit)
	}
	if want := "export STAGELY_TOKEN=" + created.Token + "; curl -fsSL " + serverURL + "/install.sh | sudo --preserve-env=STAGELY_TOKEN sh"; created.InstallCommand != want {
		t.Errorf("install_command = %q, want %q", created.InstallCommand, want)
	}
	e.must(409, "POST", "/api/agents", "alice", map[string]any{"name": "prod-1"}, nil)

	// Listing never shows a token again.
	var list []agent
	res := e.must(200, "GET", "/api/agents", "alice", nil, &list)
	if len(list) != 1 || list[0].ID != created.Agent.ID || strings.Contains(string(res.body), created.Token) || strings.Contains(string(res.body), "stg_") {
		t.Errorf("GET /api/agents = %s", res.body)
	}

	var rotated agentWithToken
	e.must(200, "POST", fmt.Sprintf("/api/agents/%d/rotate-token", created.Agent.ID), "alice", nil, &rotated)
	if rotated.Token == created.Token || rotated.Agent.ID != created.Agent.ID || !strings.Contains(rotated.CloudInit, rotated.Token) ||
		!strings.HasPrefix(rotated.InstallCommand, "export STAGELY_TOKEN="+rotated.Token+"; ") {
		t.Errorf("rotation = %+v", rotated.Agent)
	}
	row, _ = e.st.AgentByID(ctx, created.Agent.ID)
	if agenttoken.Verify(created.Token, row.BootstrapHash) == nil {
		t.Errorf("the old token still verifies after rotation")
	}
	if err := agenttoken.Verify(rotated.Token, row.BootstrapHash); err != nil || !agenttoken.IsBootstrap(rotated.Token) {
		t.Errorf("the new bootstrap token does not verify: %v", err)
	}
	wantWaiting(t, rotated.Agent, time.Now().Add(api.DefaultBootstrapTTL))
	var events []agentEvent
	e.must(200, "GET", fmt.Sprintf("/api/agents/%d/events", created.Agent.ID), "alice", nil, &events)
	if len(events) != 2 || events[0].Action != "agent.rotate_token" || events[1].Action != "agent.create" {
		t.Errorf("agent events = %+v, want rotate_token then create", events)
	}
	e.signIn("mallory")
	e.must(404, "GET", fmt.Sprintf("/api/agents/%d/events", created.Agent.ID), "mallory", nil, nil)
	if got := e.revoker.revoked.All(); !slices.Equal(got, []int64{created.Agent.ID}) {
		t.Errorf("revoked after rotation = %v, want [%d]", got, created.Agent.ID)
	}

	// Deleting the agent unlinks its projects and cuts its connection.
	var p project
	e.must(201, "POST", "/api/projects", "alice", map[string]any{"installation_id": w.aliceInst, "repo_id": w.apiRepo, "agent_id": created.Agent.ID}, &p)
	e.must(204, "DELETE", fmt.Sprintf("/api/agents/%d", created.Agent.ID), "alice", nil, nil)
	e.must(200, "GET", fmt.Sprintf("/api/projects/%d", p.ID), "alice", nil, &p)
	if p.Agent != nil {
		t.Errorf("project still linked to the deleted agent: %+v", p.Agent)
	}
	if got := e.revoker.revoked.All(); !slices.Equal(got, []int64{created.Agent.ID, created.Agent.ID}) {
		t.Errorf("revoked = %v, want the agent twice (rotation, deletion)", got)
	}
	e.must(404, "DELETE", fmt.Sprintf("/api/agents/%d", created.Agent.ID), "alice", nil, nil)
	e.must(404, "POST", fmt.Sprintf("/api/agents/%d/rotate-token", created.Agent.ID), "alice", nil, nil)

	audits, _ := e.st.AuditByUser(ctx, w.alice.user.ID, 50)
	var actions []string
	for _, a := range audits {
		actions = append(actions, a.Action)
		if strings.Contains(string(a.Detail), "stg_") {
			t.Errorf("audit entry %s holds a token: %s", a.Action, a.Detail)
		}
	}
	for _, want := range []string{"agent.create", "agent.rotate_token", "agent.delete"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
	// Each token appeared in exactly the one answer that minted it.
	for _, tok := range []string{created.Token, rotated.Token} {
		n := 0
		for _, b := range e.bodies.All() {
			if strings.Contains(b, tok) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("a token appeared in %d responses, want 1", n)
		}
	}
}

// TestCreateProject_NeedsWriteAccessToTheRepository: linking a repository claims its deploy
// branch and hands Stagely's deploys of it to the user, so it takes what pushing to it takes.
// A read-only collaborator must not be able to claim main before its maintainers do.
func TestCreateProject_NeedsWriteAccessToTheRepository(t *testing.T) {
	t.Parallel()
	e, w := newAliceEnv(t)
	body := map[string]any{"installation_id": w.orgInst, "repo_id": w.orgRepo}
	for _, role := range []string{"read", "triage"} {
		if err := e.sim.SetRepoRole("acme/site", "alice", role); err != nil {
			t.Fatal(err)
		}
		res := e.do("POST", "/api/projects", "alice", body)
		if res.status != 403 || !strings.Contains(string(res.body), "write access to acme/site") {
			t.Fatalf("role %s: %d %s, want 403 naming the write access it takes", role, res.status, res.body)
		}
	}
	if ps, _ := e.st.ProjectsByUser(context.Background(), w.alice.user.ID); len(ps) != 0 {
		t.Fatalf("a refused link created %d projects", len(ps))
	}
	if err := e.sim.SetRepoRole("acme/site", "alice", "maintain"); err != nil {
		t.Fatal(err)
	}
	var p project
	e.must(201, "POST", "/api/projects", "alice", body, &p)

	// Moving the project to another branch claims that branch: it takes write access too.
	if err := e.sim.SetRepoRole("acme/site", "alice", "read"); err != nil {
		t.Fatal(err)
	}
	res := e.do("PATCH", fmt.Sprintf("/api/projects/%d", p.ID), "alice", map[string]any{"deploy_branch": "release"})
	if res.status != 403 {
		t.Fatalf("branch change with read access: %d %s", res.status, res.body)
	}
	res = e.do("PATCH", fmt.Sprintf("/api/projects/%d", p.ID), "alice", map[string]any{"root_directory": "services/other"})
	if res.status != 403 {
		t.Fatalf("root directory change with read access: %d %s", res.status, res.body)
	}
	// Linking an agent claims nothing on GitHub.
	var ag agentWithToken
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "box"}, &ag)
	e.must(200, "PATCH", fmt.Sprintf("/api/projects/%d", p.ID), "alice", map[string]any{"agent_id": ag.Agent.ID}, nil)
}

// wantWaiting checks the agent is shown as waiting for its first connection, with its
// bootstrap token expiring about at expires.
func wantWaiting(t *testing.T, a agent, expires time.Time) {
	t.Helper()
	if !a.WaitingForFirstConnection || a.BootstrapExpiresAt == nil {
		t.Fatalf("agent = %+v, want waiting for first connection with an expiry", a)
	}
	at, err := time.Parse(time.RFC3339, *a.BootstrapExpiresAt)
	if err != nil || at.Sub(expires).Abs() > time.Minute {
		t.Errorf("bootstrap_expires_at = %s (%v), want about %s", *a.BootstrapExpiresAt, err, expires.UTC().Format(time.RFC3339))
	}
}
