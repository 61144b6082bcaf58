package e2e

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// End-to-end tests of stagely.yaml's keys and of monorepos on the real Docker engine, with the
// real server and agent binaries (docs/stagely-yaml.md, docs/monorepos.md).

// TestComposeFileInASubfolderBuildsFromPathsRelativeToIt: compose_file names a file in a
// folder; compose runs with that folder as its project directory, so `build: ..` reaches the
// repository root, as `docker compose -f deploy/docker-compose.prod.yml` would.
func TestComposeFileInASubfolderBuildsFromPathsRelativeToIt(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "from a subfolder\n"}
	files := repo.Files()
	compose := strings.Replace(string(files["compose.yaml"]), "build: .", "build: ..", 1)
	delete(files, "compose.yaml")
	files["deploy/docker-compose.prod.yml"] = []byte(compose)
	files["stagely.yaml"] = []byte("compose_file: ./deploy/docker-compose.prod.yml\nservices:\n  web:\n    health_check_grace_period: 20s\n")
	sha := s.push("main", files, "compose file in deploy/")
	s.wantDeployed(sha, 3*time.Minute, "the deploy")
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "from a subfolder\n" {
		t.Fatalf("service answered %q", got)
	}
}

// TestNoStagelyYAMLDeploysTheDefaultComposeFile: a repository with no stagely.yaml at all
// deploys docker-compose.yml, found by compose's own default names, with every default.
func TestNoStagelyYAMLDeploysTheDefaultComposeFile(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "zero config\n"}
	files := repo.Files()
	files["docker-compose.yml"] = files["compose.yaml"]
	delete(files, "compose.yaml")
	delete(files, "stagely.yaml")
	sha := s.push("main", files, "no stagely.yaml")
	run := s.wantDeployed(sha, 3*time.Minute, "the deploy")
	if !contains(run.Summary, "web", "worker", "running") {
		t.Fatalf("summary lacks the services:\n%s", run.Summary)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "zero config\n" {
		t.Fatalf("service answered %q", got)
	}
}

// TestIgnoredServiceIsCreatedOnTheFirstDeployThenLeftAlone: `ignore: true` on a first deploy
// creates the service once (docs/stagely-yaml.md); a later deploy that changes it leaves the
// running container as it was, while the other services update.
func TestIgnoredServiceIsCreatedOnTheFirstDeployThenLeftAlone(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	img := dockertest.BusyboxImage(t)
	repo := samplerepo.Repo{Image: img, Port: freePort(t), Page: "version 1\n"}
	withDB := func(r samplerepo.Repo, dbVersion string) map[string][]byte {
		files := r.Files()
		files["compose.yaml"] = append(files["compose.yaml"], fmt.Sprintf(`  db:
    image: %s
    command: ["sh", "-c", "exec sleep 2147483647"]
    environment:
      DB_VERSION: %q
    stop_grace_period: 1s
`, img, dbVersion)...)
		files["stagely.yaml"] = []byte("services:\n  web:\n    health_check_grace_period: 20s\n  db:\n    ignore: true\n")
		return files
	}
	first := s.push("main", withDB(repo, "v1"), "first deploy, db ignored")
	s.wantDeployed(first, 3*time.Minute, "first deploy")
	id, env := dbContainer(t, s.project.ComposeProject)
	if id == "" || !strings.Contains(env, "DB_VERSION=v1") {
		t.Fatalf("after the first deploy the ignored db is %q with env %q; want it created", id, env)
	}

	next := repo
	next.Page = "version 2\n"
	second := s.push("main", withDB(next, "v2"), "change web and db")
	s.wantDeployed(second, 3*time.Minute, "second deploy")
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 2\n" {
		t.Fatalf("web answered %q after the second deploy", got)
	}
	if id2, env2 := dbContainer(t, s.project.ComposeProject); id2 != id || !strings.Contains(env2, "DB_VERSION=v1") {
		t.Fatalf("the ignored db was touched: container %q (was %q), env %q", id2, id, env2)
	}
}

// dbContainer is the id and environment of the db service's running container, or "".
func dbContainer(t testing.TB, project string) (id, env string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+project, "--filter", "label=com.docker.compose.service=db").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	id = strings.TrimSpace(string(out))
	if id == "" {
		return "", ""
	}
	out, err = exec.CommandContext(ctx, "docker", "inspect", "--format", "{{json .Config.Env}}", id).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	return id, string(out)
}

// TestMonorepoProjectsDeployIndependently: two projects in root directories of one repository
// and branch; a push that touches only services/api/ deploys only the api project, under a
// check run named for it, and says why web was left out.
func TestMonorepoProjectsDeployIndependently(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	img := dockertest.BusyboxImage(t)
	api := samplerepo.Repo{Image: img, Port: freePort(t), Page: "api 1\n"}
	web := samplerepo.Repo{Image: img, Port: freePort(t), Page: "web 1\n"}
	if err := s.st.SetProjectSource(s.ctx, s.project.UserID, s.project.ID, "main", "services/web"); err != nil {
		t.Fatal(err)
	}
	apiProject, err := s.st.CreateProject(s.ctx, store.NewProject{
		UserID: s.project.UserID, InstallationID: s.project.InstallationID, Name: "api", RepoID: s.project.RepoID,
		RepoFullName: s.repo, DeployBranch: "main", AgentID: &s.agentRow.ID, RootDirectory: "services/api",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { composeDown(t, apiProject.ComposeProject) })
	shared := "1"
	tree := func() map[string][]byte {
		files := map[string][]byte{"README.md": []byte("# mono\n"), "libs/shared/version.txt": []byte(shared)}
		for dir, r := range map[string]samplerepo.Repo{"services/api": api, "services/web": web} {
			for name, b := range r.Files() {
				files[dir+"/"+name] = b
			}
		}
		// api builds with the shared library too: a change there deploys it.
		files["services/api/stagely.yaml"] = append(files["services/api/stagely.yaml"], "watch_paths:\n  - libs/shared/**\n"...)
		return files
	}

	// A new branch: what changed cannot be told, so both deploy.
	first := s.push("main", tree(), "two services")
	for _, name := range []string{"api", "web"} {
		if run := s.namedCheck("Stagely / deploy ("+name+")", first, 1, 4*time.Minute); run.Conclusion != "success" {
			t.Fatalf("%s's first deploy %q: %s\n%s", name, run.Conclusion, run.Summary, tail(run.Text, 30))
		}
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", web.Port)); got != "web 1\n" {
		t.Fatalf("web answered %q", got)
	}

	api.Page = "api 2\n"
	second := s.push("main", tree(), "change the api page")
	if d := s.lastDelivery(); d.Decision != fmt.Sprintf("deployed as #%d (api); web: no change under services/web/ (1 file changed)", s.lastDeploymentID(apiProject)) {
		t.Fatalf("decision %q", d.Decision)
	}
	if run := s.namedCheck("Stagely / deploy (api)", second, 1, 3*time.Minute); run.Conclusion != "success" {
		t.Fatalf("api's deploy %q: %s", run.Conclusion, run.Summary)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", api.Port)); got != "api 2\n" {
		t.Fatalf("api answered %q", got)
	}
	var names []string
	for _, r := range s.sim.CheckRuns(s.repo, second) {
		names = append(names, r.Name)
	}
	if len(names) != 1 {
		t.Fatalf("check runs on the api-only commit: %q, want only api's", names)
	}
	if ds := s.deployments(); len(ds) != 1 || ds[0].SHA != first {
		t.Fatalf("web has %d deployments, the newest of %s; want only the first", len(ds), ds[0].SHA[:7])
	}

	// In api's watch_paths: api deploys, web does not.
	shared = "2"
	fourth := s.push("main", tree(), "change the shared library")
	if d := s.lastDelivery(); d.Decision != fmt.Sprintf("deployed as #%d (api); web: no change under services/web/ (1 file changed)", s.lastDeploymentID(apiProject)) {
		t.Fatalf("decision on a change in watch_paths %q", d.Decision)
	}
	if run := s.namedCheck("Stagely / deploy (api)", fourth, 1, 3*time.Minute); run.Conclusion != "success" {
		t.Fatalf("api's deploy of the shared change %q: %s", run.Conclusion, run.Summary)
	}

	// Outside both root directories and watch_paths: nothing deploys.
	files := tree()
	files["README.md"] = []byte("# mono, documented\n")
	maps.Copy(files, map[string][]byte{"docs/guide.md": []byte("guide\n")})
	third := s.push("main", files, "docs only")
	if d := s.lastDelivery(); !strings.HasPrefix(d.Decision, "ignored: web: no change under services/web/, api: no change under services/api/ or in watch_paths (2 files changed)") {
		t.Fatalf("decision %q", d.Decision)
	}
	if runs := s.sim.CheckRuns(s.repo, third); len(runs) != 0 {
		t.Fatalf("a docs-only push made check runs: %+v", runs)
	}
}

// namedCheck waits for the completed check run called name numbered n (1-based) on sha.
func (s *stack) namedCheck(name, sha string, n int, within time.Duration) githubsim.CheckRun {
	s.t.Helper()
	var found githubsim.CheckRun
	waitFor(s.t, within, fmt.Sprintf("check run %q #%d on %s completed", name, n, sha[:7]), func() bool {
		var runs []githubsim.CheckRun
		for _, r := range s.sim.CheckRuns(s.repo, sha) {
			if r.Name == name {
				runs = append(runs, r)
			}
		}
		if len(runs) < n || runs[n-1].Status != "completed" {
			return false
		}
		found = runs[n-1]
		return true
	})
	return found
}

// lastDeploymentID is the id of p's newest deployment.
func (s *stack) lastDeploymentID(p store.Project) int64 {
	s.t.Helper()
	ds, err := s.st.DeploymentsByProject(s.ctx, p.ID, 1)
	if err != nil || len(ds) == 0 {
		s.t.Fatalf("no deployment of %s: %v", p.Name, err)
	}
	return ds[0].ID
}

// TestRefusedConfigurationStartsNothing: a stagely.yaml that names another project or a
// version this server does not know is refused at deploy time with a failed check run whose
// annotation sits on the offending line, and nothing is created on Docker; naming the linked
// project's own id deploys.
func TestRefusedConfigurationStartsNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// yaml is stagely.yaml's first line; "%s" is the linked project's id.
		yaml   string
		refuse string // what the failure annotation on line 1 says; "" = deploys
	}{
		{name: "project_id of another project is refused", yaml: "project_id: proj_someoneelse", refuse: "proj_someoneelse"},
		{name: "version 2.0 is refused", yaml: `version: "2.0"`, refuse: "unsupported version"},
		{name: "project_id of the linked project deploys", yaml: "project_id: %s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "configured\n"}
			first := tc.yaml
			if strings.Contains(first, "%s") {
				first = fmt.Sprintf(first, s.project.PublicID)
			}
			repo.StagelyYAML = first + "\nservices:\n  web:\n    health_check_grace_period: 20s\n"
			sha := s.push("main", repo.Files(), tc.name)
			if tc.refuse == "" {
				s.wantDeployed(sha, 3*time.Minute, "the deploy")
				if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "configured\n" {
					t.Fatalf("service answered %q", got)
				}
				return
			}
			run := s.deployCheck(sha, 1, 2*time.Minute)
			if run.Conclusion != "failure" {
				t.Fatalf("check run %q: %s\n%s", run.Conclusion, run.Title, run.Summary)
			}
			onLine1 := false
			for _, a := range run.Annotations {
				onLine1 = onLine1 || (a.Path == "stagely.yaml" && a.StartLine != nil && *a.StartLine == 1 &&
					a.AnnotationLevel == "failure" && strings.Contains(a.Message, tc.refuse))
			}
			if !onLine1 {
				t.Fatalf("no failure annotation at stagely.yaml:1 saying %q: %+v\n%s\n%s", tc.refuse, run.Annotations, run.Title, run.Summary)
			}
			if ids := projectContainers(t, s.project.ComposeProject, ""); len(ids) != 0 {
				t.Fatalf("a refused deploy created containers %q", ids)
			}
		})
	}
}

// projectContainers lists the ids of the compose project's containers, stopped ones too,
// of one service or ("") of all.
func projectContainers(t testing.TB, project, service string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.project=" + project}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// TestTimeoutKeepsThePreviousReleaseServing: deployment.timeout bounds the whole deploy. A
// pre_deploy hook that outlasts it ends the deploy as timed out on GitHub before anything is
// swapped; a new version that is still not healthy when it expires is rolled back. Either way
// the release deployed before serves.
func TestTimeoutKeepsThePreviousReleaseServing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		yaml       string
		healthPort int // inside the container; 0 = the right one
		conclusion string
		title      string   // the title's start
		summary    []string // what the summary says; "%s" is the previous release's short sha
	}{
		{name: "a pre_deploy hook past the timeout swaps nothing",
			yaml:       "deployment:\n  timeout: 3s\nhooks:\n  pre_deploy:\n    - service: web\n      command: \"echo migrating slowly; sleep 120\"\n",
			conclusion: "timed_out", title: "Timed out", summary: []string{"timed out after 3s"}},
		// The timeout leaves the build and the swap time on a loaded machine (a busybox
		// deploy takes 10–20 s under CI's load, so 2 minutes is a wide margin), and expires
		// while the broken health check keeps the new web from becoming healthy.
		{name: "an unhealthy new version past the timeout is rolled back",
			yaml:       "deployment:\n  timeout: 2m\nservices:\n  web:\n    health_check_grace_period: 5m\n",
			healthPort: 9999, conclusion: "failure", title: "Rolled back", summary: []string{"timed out after 2m0s", "Rolled back to %s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "version 1\n"}
			first := s.push("main", repo.Files(), "version 1")
			s.wantDeployed(first, 3*time.Minute, "version 1")

			slow := repo
			slow.Page, slow.StagelyYAML, slow.HealthPort = "version 2\n", tc.yaml, tc.healthPort
			sha := s.push("main", slow.Files(), "version 2")
			run := s.deployCheck(sha, 1, 4*time.Minute)
			if run.Conclusion != tc.conclusion || !strings.HasPrefix(run.Title, tc.title) {
				t.Fatalf("check run %q: %s\n%s", run.Conclusion, run.Title, run.Summary)
			}
			for _, want := range tc.summary {
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, first[:7])
				}
				if !strings.Contains(run.Summary, want) {
					t.Fatalf("summary lacks %q:\n%s", want, run.Summary)
				}
			}
			if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 1\n" {
				t.Fatalf("after the timeout the service answered %q, want the previous release", got)
			}
		})
	}
}

// TestStopFirstReplacesOnlyTheChangedService: with strategy stop-first, a push that changes
// only web's page stops and recreates web alone; the worker keeps its container, and the
// check run shows the plan and the stop.
func TestStopFirstReplacesOnlyTheChangedService(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "version 1\n",
		StagelyYAML: "deployment:\n  strategy: stop-first\nservices:\n  web:\n    health_check_grace_period: 20s\n"}
	s.wantDeployed(s.push("main", repo.Files(), "version 1"), 3*time.Minute, "version 1")
	worker, web := projectContainers(t, s.project.ComposeProject, "worker"), projectContainers(t, s.project.ComposeProject, "web")
	if len(worker) != 1 || len(web) != 1 {
		t.Fatalf("after the first deploy: worker %q, web %q", worker, web)
	}

	next := repo
	next.Page = "version 2\n"
	run := s.wantDeployed(s.push("main", next.Files(), "version 2"), 3*time.Minute, "version 2")
	if !contains(run.Summary, "recreate: web", "unchanged: worker") {
		t.Fatalf("summary lacks the plan:\n%s", run.Summary)
	}
	// Only the service the plan recreates is stopped before the swap.
	if !strings.Contains(run.Text, "stop-first: stopping web\n") {
		t.Fatalf("the log does not show web alone stopped first:\n%s", tail(run.Text, 40))
	}
	if got := projectContainers(t, s.project.ComposeProject, "worker"); len(got) != 1 || got[0] != worker[0] {
		t.Fatalf("the unchanged worker is now %q, was %q", got, worker)
	}
	if got := projectContainers(t, s.project.ComposeProject, "web"); len(got) != 1 || got[0] == web[0] {
		t.Fatalf("the changed web is %q, was %q: want a new container", got, web)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 2\n" {
		t.Fatalf("service answered %q", got)
	}
}

// TestFailingHooksAndContinueOnError: a failing post_deploy hook never rolls back — the new
// version serves and the check run succeeds with a warning, unless continue_on_error says the
// failure is expected; a failing pre_deploy hook with continue_on_error lets the deploy go on.
func TestFailingHooksAndContinueOnError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, hooks string
		warning     bool
	}{
		{name: "failing post_deploy succeeds with a warning", warning: true,
			hooks: "  post_deploy:\n    - service: web\n      command: \"echo notify failed; exit 3\"\n"},
		{name: "failing post_deploy with continue_on_error succeeds without a warning",
			hooks: "  post_deploy:\n    - service: web\n      command: \"exit 3\"\n      continue_on_error: true\n"},
		{name: "failing pre_deploy with continue_on_error deploys",
			hooks: "  pre_deploy:\n    - service: web\n      command: \"exit 3\"\n      continue_on_error: true\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "version 1\n"}
			s.wantDeployed(s.push("main", repo.Files(), "version 1"), 3*time.Minute, "version 1")
			repo.Page, repo.StagelyYAML = "version 2\n", "hooks:\n"+tc.hooks+"services:\n  web:\n    health_check_grace_period: 20s\n"
			run := s.wantDeployed(s.push("main", repo.Files(), "version 2"), 3*time.Minute, "version 2")
			if got := strings.HasSuffix(run.Title, ", with a warning"); got != tc.warning {
				t.Fatalf("title %q: want a warning %v\n%s", run.Title, tc.warning, run.Summary)
			}
			if tc.warning && !contains(run.Summary, "post_deploy hook", "exited with code 3") {
				t.Fatalf("the warning does not name the hook:\n%s", run.Summary)
			}
			if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 2\n" {
				t.Fatalf("service answered %q, want the new version", got)
			}
		})
	}
}
