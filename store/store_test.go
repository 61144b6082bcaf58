package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

func TestMigrations_ApplyFromEmptyThenNoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := emptyDatabase(t)
	first, err := migrations.Up(ctx, db)
	if err != nil {
		t.Fatalf("first Up: %v", err)
	}
	latest, err := migrations.Latest(db)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Applied) == 0 || first.Version != latest {
		t.Fatalf("first Up applied %v to version %d, want every migration up to %d", first.Applied, first.Version, latest)
	}
	second, err := migrations.Up(ctx, db)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(second.Applied) != 0 || second.Version != latest {
		t.Fatalf("second Up applied %v (version %d), want a no-op at %d", second.Applied, second.Version, latest)
	}
}

func TestMigrations_ConcurrentUpAppliesOnce(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewEmptyDatabase(t)
	var wg sync.WaitGroup
	results := make([]migrations.Result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			results[i], errs[i] = migrations.Up(context.Background(), db)
		}()
	}
	wg.Wait()
	applied := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("Up %d: %v", i, errs[i])
		}
		applied += len(results[i].Applied)
	}
	// Counted from the files, not the latest version: numbers may have gaps between branches.
	sqlFS, err := migrations.FS()
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(sqlFS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(embedded) {
		t.Fatalf("three concurrent Ups applied %d migrations in all, want %d", applied, len(embedded))
	}
}

func TestSchema_HoldsEveryTableOfTheDesign(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, table := range []string{"users", "github_installations", "projects", "agents", "secrets",
		"deployments", "deployment_logs", "webhook_deliveries", "sessions", "audit_log", "github_app"} {
		var n int
		if err := f.st.DB().QueryRowContext(f.ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: found %d (err %v)", table, n, err)
		}
	}
}

func TestUsers_UpsertByGitHubIDKeepsOneRow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u1, err := f.st.UpsertUser(f.ctx, store.User{GitHubID: 77, Login: "old"})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := f.st.UpsertUser(f.ctx, store.User{GitHubID: 77, Login: "renamed", Name: "Ren"})
	if err != nil {
		t.Fatal(err)
	}
	if u1.ID != u2.ID || u2.Login != "renamed" || u2.Name != "Ren" {
		t.Fatalf("upsert made %+v then %+v", u1, u2)
	}
	got, err := f.st.UserByGitHubID(f.ctx, 77)
	if err != nil || got.Login != "renamed" {
		t.Fatalf("UserByGitHubID = %+v, %v", got, err)
	}
}

func TestNotFound_NamesWhatWasMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"user", func() error { _, err := f.st.UserByID(f.ctx, 999999); return err }, "user 999999 not found"},
		{"project", func() error { _, err := f.st.ProjectByID(f.ctx, 424242); return err }, "project 424242 not found"},
		{"agent", func() error { _, err := f.st.AgentByID(f.ctx, 31337); return err }, "agent 31337 not found"},
		{"installation", func() error { _, err := f.st.InstallationByGitHubID(f.ctx, 5); return err }, "installation 5 not found"},
		{"delivery", func() error { _, err := f.st.DeliveryByDeliveryID(f.ctx, "nope"); return err }, "webhook delivery nope not found"},
		{"secret delete", func() error { return f.st.DeleteSecret(f.ctx, 1, "", "global", "X") }, "secret global/X not found"},
		{"github app", func() error { _, err := f.st.GitHubAppCredentials(f.ctx); return err }, "GitHub App credentials not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			wantErrContains(t, err, tt.want)
		})
	}
}

func TestConstraints_RefuseBadRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 1, "main")
	exec := func(q string, args ...any) func() error {
		return func() error { _, err := f.st.DB().ExecContext(f.ctx, q, args...); return err }
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"duplicate user github_id", exec(`INSERT INTO users (github_id, login) VALUES ($1, 'x')`, f.user.GitHubID)},
		{"duplicate installation github_id", exec(`INSERT INTO github_installations (github_id, account_login, account_id, account_type) VALUES ($1, 'x', 1, 'User')`, f.inst.GitHubID)},
		{"unknown installation account type", exec(`INSERT INTO github_installations (github_id, account_login, account_id, account_type) VALUES (9, 'x', 1, 'Robot')`)},
		{"unknown agent status", exec(`INSERT INTO agents (user_id, name, token_hash, status) VALUES ($1, 'a', '$2a$x', 'sleeping')`, f.user.ID)},
		{"agent hash that is not bcrypt", exec(`INSERT INTO agents (user_id, name, token_hash) VALUES ($1, 'a', 'plaintext')`, f.user.ID)},
		{"unknown deployment status", exec(`INSERT INTO deployments (project_id, sha, ref, trigger, status) VALUES ($1, $2, 'r', 'push', 'exploded')`, p.ID, sha(1))},
		{"unknown deployment trigger", exec(`INSERT INTO deployments (project_id, sha, ref, trigger) VALUES ($1, $2, 'r', 'cron')`, p.ID, sha(1))},
		{"short sha", exec(`INSERT INTO deployments (project_id, sha, ref, trigger) VALUES ($1, 'abc', 'r', 'push')`, p.ID)},
		{"finished status without finish time", exec(`INSERT INTO deployments (project_id, sha, ref, trigger, status) VALUES ($1, $2, 'r', 'push', 'success')`, p.ID, sha(1))},
		{"project of unknown user", exec(`INSERT INTO projects (public_id, user_id, installation_id, name, repo_id, repo_full_name, deploy_branch, compose_project) VALUES ('proj_zzzz', 999999, $1, 'n', 5, 'a/b', 'main', 'c1')`, f.inst.ID)},
		{"same branch of a repo in two projects", exec(`INSERT INTO projects (public_id, user_id, installation_id, name, repo_id, repo_full_name, deploy_branch, compose_project) VALUES ('proj_yyyy', $1, $2, 'other', 1, 'a/b', 'main', 'c2')`, f.user.ID, f.inst.ID)},
		{"root directory going up", exec(`UPDATE projects SET root_directory = 'services/../..' WHERE id = $1`, p.ID)},
		{"absolute root directory", exec(`UPDATE projects SET root_directory = '/srv/api' WHERE id = $1`, p.ID)},
		{"root directory with a trailing slash", exec(`UPDATE projects SET root_directory = 'services/api/' WHERE id = $1`, p.ID)},
		{"root directory of the form ./a", exec(`UPDATE projects SET root_directory = './api' WHERE id = $1`, p.ID)},
		{"root directory with a backslash", exec(`UPDATE projects SET root_directory = 'services\api' WHERE id = $1`, p.ID)},
		{"secret key with a dash", exec(`INSERT INTO secrets (project_id, scope, key, value_encrypted, nonce, key_id) VALUES ($1, 'global', 'BAD-KEY', '\x00', '\x000000000000000000000000', 'k')`, p.ID)},
		{"secret nonce of 8 bytes", exec(`INSERT INTO secrets (project_id, scope, key, value_encrypted, nonce, key_id) VALUES ($1, 'global', 'K', '\x00', '\x0000000000000000', 'k')`, p.ID)},
		{"delivery status unknown", exec(`INSERT INTO webhook_deliveries (delivery_id, event, payload, status) VALUES ('d', 'push', '\x00', 'lost')`)},
		{"session expiring before it starts", exec(`INSERT INTO sessions (id_hash, user_id, expires_at) VALUES ($1, $2, now() - interval '1 hour')`, make([]byte, 32), f.user.ID)},
		{"log line with seq 0", exec(`INSERT INTO deployment_logs (deployment_id, seq, stream, line, ts) VALUES (1, 0, 'stdout', 'x', now())`)},
		{"second github app row", exec(`INSERT INTO github_app (id, app_id, client_id, credentials_encrypted, credentials_nonce, credentials_key_id) VALUES (2, 1, 'c', '\x00', '\x000000000000000000000000', 'k')`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Fatal("the database accepted the row")
			}
		})
	}
}

func TestInstallations_SuspendedOrDeletedDeployNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 10, "main")
	got, err := f.st.ProjectsForPush(f.ctx, 10, "main")
	if err != nil || len(got) != 1 || got[0].ID != p.ID {
		t.Fatalf("active installation: %v, %v", got, err)
	}
	if got, _ := f.st.ProjectsForPush(f.ctx, 10, "feature"); len(got) != 0 {
		t.Fatalf("push to another branch matched %d projects", len(got))
	}
	now := time.Now()
	if err := f.st.SetInstallationSuspended(f.ctx, f.inst.GitHubID, &now); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.ProjectsForPush(f.ctx, 10, "main"); len(got) != 0 {
		t.Fatal("a suspended installation still deploys")
	}
	if err := f.st.SetInstallationSuspended(f.ctx, f.inst.GitHubID, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkInstallationDeleted(f.ctx, f.inst.GitHubID, now); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.ProjectsForPush(f.ctx, 10, "main"); len(got) != 0 {
		t.Fatal("a deleted installation still deploys")
	}
	in, _ := f.st.InstallationByGitHubID(f.ctx, f.inst.GitHubID)
	if in.Active() {
		t.Fatal("deleted installation reports active")
	}
	// The project is kept: deleting an installation must not delete user data.
	if _, err := f.st.ProjectByID(f.ctx, p.ID); err != nil {
		t.Fatalf("project gone with its installation: %v", err)
	}
}

func TestProjects_OwnershipIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 20, "main")
	bob := f.newUser("bob")
	bobAgent := f.newAgent(bob.ID, "bob-box")
	aliceAgent := f.newAgent(f.user.ID, "alice-box")

	if _, err := f.st.ProjectForUser(f.ctx, bob.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob read alice's project: %v", err)
	}
	if err := f.st.SetProjectAgent(f.ctx, f.user.ID, p.ID, &bobAgent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("alice linked bob's agent: %v", err)
	}
	if err := f.st.SetProjectAgent(f.ctx, bob.ID, p.ID, &bobAgent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob relinked alice's project: %v", err)
	}
	if err := f.st.DeleteProject(f.ctx, bob.ID, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob deleted alice's project: %v", err)
	}
	if err := f.st.SetProjectAgent(f.ctx, f.user.ID, p.ID, &aliceAgent.ID); err != nil {
		t.Fatalf("alice linked her own agent: %v", err)
	}
	if err := f.st.DeleteAgent(f.ctx, bob.ID, aliceAgent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob deleted alice's agent: %v", err)
	}
}

func TestProjects_DeletingAgentUnlinksButKeepsProject(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 30, "main")
	a := f.newAgent(f.user.ID, "box")
	if err := f.st.SetProjectAgent(f.ctx, f.user.ID, p.ID, &a.ID); err != nil {
		t.Fatal(err)
	}
	d := f.newDeployment(p.ID, 1)
	if err := f.st.MarkDispatched(f.ctx, d.ID, a.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteAgent(f.ctx, f.user.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.ProjectByID(f.ctx, p.ID)
	if err != nil || got.AgentID.Valid {
		t.Fatalf("project after agent deletion: %+v, %v", got, err)
	}
	dd, err := f.st.DeploymentByID(f.ctx, d.ID)
	if err != nil || dd.AgentID.Valid {
		t.Fatalf("deployment history after agent deletion: %+v, %v", dd, err)
	}
}

func TestProjects_DeleteCascadesToSecretsDeploymentsAndLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 40, "main")
	if _, err := f.st.PutSecret(f.ctx, store.Secret{ProjectID: p.ID, Scope: "global", Key: "K", ValueEncrypted: []byte{1}, Nonce: make([]byte, 12), KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	d := f.dispatchedDeployment(p.ID, 1)
	if err := f.st.AppendAgentLogs(f.ctx, d.ID, d.AgentID.Int64, []store.LogLine{{Seq: 1, Stream: "stdout", Line: "x", TS: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteProject(f.ctx, f.user.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	for table, q := range map[string]string{
		"secrets":         `SELECT count(*) FROM secrets WHERE project_id = $1`,
		"deployments":     `SELECT count(*) FROM deployments WHERE project_id = $1`,
		"deployment_logs": `SELECT count(*) FROM deployment_logs WHERE deployment_id = $1`,
	} {
		arg := p.ID
		if table == "deployment_logs" {
			arg = d.ID
		}
		var n int
		if err := f.st.DB().QueryRowContext(f.ctx, q, arg).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s left behind: %d rows (err %v)", table, n, err)
		}
	}
}

func TestProjects_PublicIDAndComposeProjectAreStable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 50, "main")
	if len(p.PublicID) != len("proj_")+12 || p.ComposeProject != "stagely-"+p.PublicID[5:] {
		t.Fatalf("public id %q, compose project %q", p.PublicID, p.ComposeProject)
	}
	q := f.newProject("api", 51, "main")
	if q.PublicID == p.PublicID || q.ComposeProject == p.ComposeProject {
		t.Fatal("two projects share an id")
	}
}

func TestProjects_OneBranchDeploysOneProjectPerRootDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create := func(name, dir string) (store.Project, error) {
		return f.st.CreateProject(f.ctx, store.NewProject{UserID: f.user.ID, InstallationID: f.inst.ID, Name: name,
			RepoID: 80, RepoFullName: "acme/mono", DeployBranch: "main", RootDirectory: dir})
	}
	api, err := create("api", "services/api")
	if err != nil {
		t.Fatal(err)
	}
	web, err := create("web", "services/web")
	if err != nil {
		t.Fatal(err)
	}
	if api.RootDirectory != "services/api" {
		t.Fatalf("root directory read back as %q", api.RootDirectory)
	}
	got, err := f.st.ProjectsForPush(f.ctx, 80, "main")
	if err != nil || len(got) != 2 || got[0].ID != api.ID || got[1].ID != web.ID {
		t.Fatalf("projects for a push: %v, %v", got, err)
	}
	_, err = create("api2", "services/api")
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second project on the same root directory: got %v, want ErrConflict", err)
	}
	wantErrContains(t, err, "projects_repo_id_deploy_branch_root_directory_key")
	err = f.st.SetProjectSource(f.ctx, f.user.ID, web.ID, "main", "services/api")
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("moving onto another project's root directory: got %v, want ErrConflict", err)
	}
	if err := f.st.SetProjectSource(f.ctx, f.user.ID, web.ID, "main", ""); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.st.ProjectByID(f.ctx, web.ID); p.RootDirectory != "" {
		t.Fatalf("root directory after moving to the repository root: %q", p.RootDirectory)
	}
}

func TestProjects_DuplicateNameIsConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.newProject("web", 60, "main")
	_, err := f.st.CreateProject(f.ctx, store.NewProject{UserID: f.user.ID, InstallationID: f.inst.ID, Name: "web", RepoID: 61, RepoFullName: "a/b", DeployBranch: "main"})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	wantErrContains(t, err, "projects_user_id_name_key")
}

func TestSecrets_UniquePerProjectScopeKeyAndUpsert(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 70, "main")
	put := func(scope, key string, v byte) store.SecretMeta {
		t.Helper()
		m, err := f.st.PutSecret(f.ctx, store.Secret{ProjectID: p.ID, Scope: scope, Key: key, ValueEncrypted: []byte{v}, Nonce: make([]byte, 12), KeyID: "k1"})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := put("global", "DB", 1)
	b := put("global", "DB", 2)
	c := put("backend", "DB", 3)
	if a.ID != b.ID || c.ID == a.ID {
		t.Fatalf("upsert ids: %d %d %d", a.ID, b.ID, c.ID)
	}
	sealed, err := f.st.SealedSecrets(f.ctx, p.ID)
	if err != nil || len(sealed) != 2 {
		t.Fatalf("SealedSecrets = %d rows, %v", len(sealed), err)
	}
	for _, s := range sealed {
		if s.Scope == "global" && s.ValueEncrypted[0] != 2 {
			t.Fatal("upsert did not replace the value")
		}
	}
	metas, err := f.st.SecretMetas(f.ctx, p.ID)
	if err != nil || len(metas) != 2 || metas[0].Scope != "backend" {
		t.Fatalf("SecretMetas = %+v, %v", metas, err)
	}
	if err := f.st.DeleteSecret(f.ctx, p.ID, "", "backend", "DB"); err != nil {
		t.Fatal(err)
	}
	_, err = f.st.DB().ExecContext(f.ctx, `INSERT INTO secrets (project_id, scope, key, value_encrypted, nonce, key_id) VALUES ($1, 'global', 'DB', '\x00', $2, 'k')`, p.ID, make([]byte, 12))
	if err == nil {
		t.Fatal("a second (project, scope, key) row was accepted")
	}
}

func TestDeployments_OneActivePerProject(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 80, "main")
	other := f.newProject("api", 81, "main")
	a := f.newAgent(f.user.ID, "box")
	d1, d2, d3 := f.newDeployment(p.ID, 1), f.newDeployment(p.ID, 2), f.newDeployment(other.ID, 3)
	now := time.Now()
	if err := f.st.MarkDispatched(f.ctx, d1.ID, a.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkDispatched(f.ctx, d2.ID, a.ID, now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second active deployment of one project: %v, want ErrConflict", err)
	}
	if err := f.st.MarkDispatched(f.ctx, d3.ID, a.ID, now); err != nil {
		t.Fatalf("another project's deployment was blocked: %v", err)
	}
	stranger := f.newAgent(f.user.ID, "other")
	if err := f.st.MarkRunning(f.ctx, d1.ID, stranger.ID, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another agent accepted the job: %v", err)
	}
	if err := f.st.MarkRunning(f.ctx, d1.ID, a.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.FinishDeployment(f.ctx, d1.ID, store.DeploymentSuccess, "", json.RawMessage(`[{"name":"web"}]`), now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkDispatched(f.ctx, d2.ID, a.ID, now); err != nil {
		t.Fatalf("after the first finished, the next could not start: %v", err)
	}
	active, err := f.st.ActiveDeployments(f.ctx, a.ID)
	if err != nil || len(active) != 2 {
		t.Fatalf("ActiveDeployments = %d, %v", len(active), err)
	}
}

func TestDeployments_FinishedStaysFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 90, "main")
	d := f.newDeployment(p.ID, 1)
	a := f.newAgent(f.user.ID, "box")
	now := time.Now()
	if err := f.st.MarkDispatched(f.ctx, d.ID, a.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.FinishDeployment(f.ctx, d.ID, store.DeploymentFailure, "boom", nil, now); err != nil {
		t.Fatal(err)
	}
	err := f.st.FinishDeployment(f.ctx, d.ID, store.DeploymentSuccess, "", nil, now)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("re-finishing: %v", err)
	}
	wantErrContains(t, err, "state that allows this change")
	if err := f.st.MarkRunning(f.ctx, d.ID, a.ID, now); err == nil {
		t.Fatal("a finished deployment went back to running")
	}
	got, _ := f.st.DeploymentByID(f.ctx, d.ID)
	if got.Status != store.DeploymentFailure || got.Error != "boom" || !got.Finished() {
		t.Fatalf("deployment after refused changes: %+v", got)
	}
}

func TestDeployments_SupersedeQueuedOlderOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 100, "main")
	a := f.newAgent(f.user.ID, "box")
	running := f.newDeployment(p.ID, 1)
	if err := f.st.MarkDispatched(f.ctx, running.ID, a.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	q1, q2, newest := f.newDeployment(p.ID, 2), f.newDeployment(p.ID, 3), f.newDeployment(p.ID, 4)
	got, err := f.st.SupersedeQueued(f.ctx, newest, time.Now())
	if err != nil || len(got) != 2 {
		t.Fatalf("SupersedeQueued = %d rows, %v", len(got), err)
	}
	for _, id := range []int64{q1.ID, q2.ID} {
		d, _ := f.st.DeploymentByID(f.ctx, id)
		if d.Status != store.DeploymentSuperseded || d.SupersededBy.Int64 != newest.ID {
			t.Fatalf("deployment %d: %s by %v", id, d.Status, d.SupersededBy)
		}
	}
	if d, _ := f.st.DeploymentByID(f.ctx, running.ID); d.Status != store.DeploymentDispatched {
		t.Fatalf("the running deployment was superseded: %s", d.Status)
	}
	next, err := f.st.OldestQueued(f.ctx, p.ID, store.EnvironmentProduction)
	if err != nil || next.ID != newest.ID {
		t.Fatalf("OldestQueued = %d, %v; want %d", next.ID, err, newest.ID)
	}
}

func TestDeployments_LastSuccessfulIsRollbackTarget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 110, "main")
	now := time.Now()
	good := f.newDeployment(p.ID, 1)
	_ = f.st.FinishDeployment(f.ctx, good.ID, store.DeploymentSuccess, "", nil, now)
	bad := f.newDeployment(p.ID, 2)
	_ = f.st.FinishDeployment(f.ctx, bad.ID, store.DeploymentRolledBack, "health", nil, now)
	cur := f.newDeployment(p.ID, 3)
	got, err := f.st.LastSuccessful(f.ctx, p.ID, store.EnvironmentProduction, cur.ID)
	if err != nil || got.ID != good.ID {
		t.Fatalf("LastSuccessful = %d, %v; want %d", got.ID, err, good.ID)
	}
	if _, err := f.st.LastSuccessful(f.ctx, p.ID, store.EnvironmentProduction, good.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before the first success: %v", err)
	}
	cr, gd := int64(555), int64(777)
	if err := f.st.SetDeploymentGitHubIDs(f.ctx, cur.ID, &cr, &gd); err != nil {
		t.Fatal(err)
	}
	byCheck, err := f.st.DeploymentByCheckRunID(f.ctx, 555)
	if err != nil || byCheck.ID != cur.ID || byCheck.GitHubDeploymentID.Int64 != 777 {
		t.Fatalf("DeploymentByCheckRunID = %+v, %v", byCheck, err)
	}
}

func TestLogs_BatchedOrderedAndDeduplicated(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 120, "main")
	d := f.dispatchedDeployment(p.ID, 1)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678900000, time.UTC)
	batch := func(from, to int) []store.LogLine {
		var out []store.LogLine
		for i := from; i <= to; i++ {
			out = append(out, store.LogLine{Seq: int64(i), Stream: "stdout", Line: "line " + sha(i)[36:] + " 'quoted' \"x\" ü", TS: ts})
		}
		return out
	}
	if err := f.st.AppendAgentLogs(f.ctx, d.ID, d.AgentID.Int64, batch(1, 500)); err != nil {
		t.Fatal(err)
	}
	// A reconnect resends 400..600: the overlap must not double.
	if err := f.st.AppendAgentLogs(f.ctx, d.ID, d.AgentID.Int64, batch(400, 600)); err != nil {
		t.Fatal(err)
	}
	all, err := f.st.Logs(f.ctx, d.ID, 0, 10000)
	if err != nil || len(all) != 600 {
		t.Fatalf("Logs = %d lines, %v", len(all), err)
	}
	for i, l := range all {
		if l.Seq != int64(i+1) {
			t.Fatalf("line %d has seq %d", i, l.Seq)
		}
	}
	stranger := f.newAgent(f.user.ID, "stranger")
	if err := f.st.AppendAgentLogs(f.ctx, d.ID, stranger.ID, batch(601, 610)); err != nil {
		t.Fatal(err)
	}
	if more, _ := f.st.Logs(f.ctx, d.ID, 600, 100); len(more) != 0 {
		t.Fatalf("an agent the deployment was not dispatched to wrote %d lines", len(more))
	}
	if !all[0].TS.Equal(ts) || all[0].Line != batch(1, 1)[0].Line {
		t.Fatalf("first line: %+v", all[0])
	}
	tail, err := f.st.LogTail(f.ctx, d.ID, 3)
	if err != nil || len(tail) != 3 || tail[0].Seq != 598 || tail[2].Seq != 600 {
		t.Fatalf("LogTail = %+v, %v", tail, err)
	}
}

func TestSessions_ExpiredOrRevokedAreNotActive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	mk := func(b byte, exp time.Time) []byte {
		h := make([]byte, 32)
		h[0] = b
		if err := f.st.CreateSession(f.ctx, store.Session{IDHash: h, UserID: f.user.ID, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	live := mk(1, now.Add(time.Hour))
	expiring := mk(2, now.Add(time.Second))
	if s, err := f.st.ActiveSession(f.ctx, live, now); err != nil || s.UserID != f.user.ID {
		t.Fatalf("live session: %+v, %v", s, err)
	}
	if _, err := f.st.ActiveSession(f.ctx, expiring, now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if err := f.st.RevokeSession(f.ctx, live, now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.ActiveSession(f.ctx, live, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked session: %v", err)
	}
	if err := f.st.RevokeSession(f.ctx, live, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
}

func TestAgents_StatusLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var gotID int64
	a, err := f.st.CreateAgent(f.ctx, f.user.ID, "box", func(id int64) (string, error) { gotID = id; return "$2a$10$h", nil })
	if err != nil || a.ID != gotID || a.Status != store.AgentOffline || a.TokenHash != "$2a$10$h" {
		t.Fatalf("CreateAgent = %+v (mint saw id %d), %v", a, gotID, err)
	}
	if _, err := f.st.CreateAgent(f.ctx, f.user.ID, "box", func(int64) (string, error) { return "$2a$10$h", nil }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate agent name: %v", err)
	}
	old := time.Now().Add(-time.Hour)
	if err := f.st.MarkAgentConnected(f.ctx, a.ID, store.AgentHello{Version: "1.0.0", Hostname: "h", Docker: "28", Compose: "2.40"}, old); err != nil {
		t.Fatal(err)
	}
	got, _ := f.st.AgentByID(f.ctx, a.ID)
	if got.Status != store.AgentOnline || got.Version != "1.0.0" || !got.LastHeartbeat.Valid {
		t.Fatalf("after connect: %+v", got)
	}
	ids, err := f.st.MarkStaleAgentsOffline(f.ctx, time.Now().Add(-time.Minute))
	if err != nil || len(ids) != 1 || ids[0] != a.ID {
		t.Fatalf("MarkStaleAgentsOffline = %v, %v", ids, err)
	}
	if err := f.st.SetAgentStatus(f.ctx, a.ID, "asleep"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("unknown status: %v", err)
	}
}

func TestAgents_AutoUpdateIsOnUntilSwitchedOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, err := f.st.CreateAgent(f.ctx, f.user.ID, "box", func(int64) (string, error) { return "$2a$10$h", nil })
	if err != nil || !a.AutoUpdate {
		t.Fatalf("CreateAgent = %+v, %v; want auto_update on", a, err)
	}
	if err := f.st.SetAgentAutoUpdate(f.ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.AgentByID(f.ctx, a.ID); err != nil || got.AutoUpdate {
		t.Fatalf("after switching off: %+v, %v", got, err)
	}
	if err := f.st.SetAgentAutoUpdate(f.ctx, a.ID+1000, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown agent: %v", err)
	}
}

func TestInTx_RollsBackEveryRowOnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	boom := errors.New("boom")
	err := f.st.InTx(f.ctx, func(tx *store.Store) error {
		if _, err := tx.UpsertUser(f.ctx, store.User{GitHubID: 4040, Login: "ghost"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := f.st.UserByGitHubID(f.ctx, 4040); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("row survived the rollback: %v", err)
	}
}

func TestAudit_AppendAndList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	uid := sql.NullInt64{Int64: f.user.ID, Valid: true}
	for _, action := range []string{"agent.create", "secret.update"} {
		if err := f.st.AddAudit(f.ctx, store.AuditEntry{UserID: uid, Actor: "user:alice", Action: action, TargetType: "project", TargetID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.st.AuditByUser(f.ctx, f.user.ID, 10)
	if err != nil || len(got) != 2 || got[0].Action != "secret.update" || string(got[0].Detail) != "{}" {
		t.Fatalf("AuditByUser = %+v, %v", got, err)
	}
}
