package deploy_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// mono is a repository holding two projects: api in services/api (watching libs/shared too)
// and web in services/web, each with an idle agent of its own.
type mono struct {
	e        *env
	repo     string
	api, web store.Project
	tree     map[string][]byte
	head     string
}

func newMono(t *testing.T) *mono {
	t.Helper()
	e := newEnv(t)
	m := &mono{e: e, repo: "acme/mono", tree: map[string][]byte{
		"README.md":                 []byte("mono\n"),
		"libs/shared/util.txt":      []byte("v1"),
		"services/api/compose.yaml": []byte("services:\n  api:\n    image: busybox\n"),
		"services/api/stagely.yaml": []byte("watch_paths:\n  - libs/shared/**\n"),
		"services/web/compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
	}}
	if err := e.sim.CreateRepo(e.instGH, m.repo, "main"); err != nil {
		t.Fatal(err)
	}
	m.head = e.commitFiles(store.Project{RepoFullName: m.repo, DeployBranch: "main"}, m.tree)
	newProject := func(name, dir string) store.Project {
		a := e.idleAgent(name + "-box")
		p, err := e.st.CreateProject(e.ctx, store.NewProject{UserID: e.user.ID, InstallationID: e.inst.ID, Name: name,
			RepoID: e.sim.RepoID(m.repo), RepoFullName: m.repo, DeployBranch: "main", AgentID: &a.ID, RootDirectory: dir})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	m.api, m.web = newProject("api", "services/api"), newProject("web", "services/web")
	return m
}

// change commits the tree with files changed and returns the push GitHub would send, its
// commit listing what changed.
func (m *mono) change(files ...string) webhook.Push {
	m.e.t.Helper()
	for _, f := range files {
		m.tree[f] = []byte(fmt.Sprintf("%s at %d", f, len(m.tree[f])+1))
	}
	before := m.head
	m.head = m.e.commitFiles(m.api, maps.Clone(m.tree))
	return webhook.Push{Before: before, After: m.head, Commits: []webhook.Commit{{ID: m.head, Modified: files}}}
}

func (m *mono) deployments(p store.Project) int {
	m.e.t.Helper()
	ds, err := m.e.st.DeploymentsByProject(m.e.ctx, p.ID, 100)
	if err != nil {
		m.e.t.Fatal(err)
	}
	return len(ds)
}

func TestPush_DeploysOnlyTheProjectsOfAMonorepoWhoseFilesChanged(t *testing.T) {
	t.Parallel()
	zero := strings.Repeat("0", 40)
	tests := []struct {
		name         string
		files        []string
		tweak        func(*webhook.Push)
		api, web     int
		wantDecision string
	}{
		{name: "a change under one root directory", files: []string{"services/api/main.go"}, api: 1,
			wantDecision: "deployed as #1 (api); web: no change under services/web/ (1 file changed)"},
		{name: "a change in watch_paths", files: []string{"libs/shared/util.txt"}, api: 1,
			wantDecision: "deployed as #1 (api); web: no change under services/web/ (1 file changed)"},
		{name: "a change under both", files: []string{"services/api/a.go", "services/web/b.js"}, api: 1, web: 1,
			wantDecision: "deployed as #1 (api), #2 (web)"},
		{name: "a change under neither", files: []string{"README.md", "docs/x.md"},
			wantDecision: "ignored: api: no change under services/api/ or in watch_paths, web: no change under services/web/ (2 files changed)"},
		{name: "a new branch deploys", files: []string{"README.md"}, api: 1, web: 1,
			tweak: func(p *webhook.Push) { p.Before, p.Created = zero, true }},
		{name: "a forced push deploys", files: []string{"README.md"}, api: 1, web: 1,
			tweak: func(p *webhook.Push) { p.Forced = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMono(t)
			ev := m.change(tt.files...)
			if tt.tweak != nil {
				tt.tweak(&ev)
			}
			got := m.e.pushEvent(m.api, ev)
			if tt.wantDecision != "" && !strings.HasPrefix(got, tt.wantDecision) {
				t.Errorf("decision %q, want %q", got, tt.wantDecision)
			}
			if a, w := m.deployments(m.api), m.deployments(m.web); a != tt.api || w != tt.web {
				t.Fatalf("deployments: api %d, web %d; want %d, %d (decision %q)", a, w, tt.api, tt.web, got)
			}
		})
	}
}

func TestPush_ACutCommitListIsReadFromGitHubsCompare(t *testing.T) {
	t.Parallel()
	m := newMono(t)
	first := m.head
	for i := range webhook.TrustedPushCommits {
		m.change(fmt.Sprintf("services/web/f%d.js", i))
	}
	// A list of 20 commits may be cut (GitHub's older limit): compare is asked.
	ev := webhook.Push{Before: first, After: m.head, Commits: make([]webhook.Commit, webhook.TrustedPushCommits)}
	got := m.e.pushEvent(m.api, ev)
	if !strings.HasPrefix(got, "deployed as #1 (web); api: no change under services/api/ or in watch_paths (20 files changed)") {
		t.Fatalf("decision %q", got)
	}
	if n := len(m.e.sim.CallsMatching("GET", "/repos/acme/mono/compare/*")); n == 0 {
		t.Fatal("the compare API was not asked")
	}
}

func TestDispatch_AProjectsFilesAreReadFromItsRootDirectory(t *testing.T) {
	t.Parallel()
	m := newMono(t)
	ev := m.change("services/api/main.go")
	m.e.pushEvent(m.api, ev)
	jobs := m.e.hub.jobs()
	if len(jobs) != 1 || jobs[0].Config.ComposeFile != "services/api/compose.yaml" {
		t.Fatalf("jobs %+v, want one with compose file services/api/compose.yaml", jobs)
	}
	var names []string
	for _, r := range m.e.sim.CheckRuns(m.repo, ev.After) {
		names = append(names, r.Name)
	}
	if want := deploy.CheckDeploy + " (api)"; len(names) != 1 || names[0] != want {
		t.Fatalf("check runs %q, want [%q]", names, want)
	}
	sts := m.e.sim.Statuses(m.repo, ev.After)
	if len(sts) == 0 || sts[0].Context != "stagely/deploy (api)" {
		t.Fatalf("statuses %+v, want context stagely/deploy (api)", sts)
	}
}

func TestValidate_EachRootDirectoryGetsItsCheckRunWithAnnotationsInItsFiles(t *testing.T) {
	t.Parallel()
	m := newMono(t)
	m.tree["services/web/stagely.yaml"] = []byte("deployment:\n  timeuot: 5m\n")
	sha := m.e.commitFiles(m.api, maps.Clone(m.tree))
	got, err := m.e.orch.Validate(m.e.ctx, m.e.instGH, webhook.Repo{ID: m.api.RepoID, FullName: m.repo}, sha)
	if err != nil {
		t.Fatal(err)
	}
	if want := "validated " + sha[:7] + ": Configuration is valid (api); 1 problem(s) in the deploy configuration (web)"; got != want {
		t.Errorf("decision %q, want %q", got, want)
	}
	runs := map[string]string{}
	for _, r := range m.e.sim.CheckRuns(m.repo, sha) {
		runs[r.Name] = r.Conclusion
		if r.Name == deploy.CheckValidate+" (web)" {
			if len(r.Annotations) != 1 || r.Annotations[0].Path != "services/web/stagely.yaml" || *r.Annotations[0].StartLine != 2 {
				t.Errorf("web's annotations %+v, want one at services/web/stagely.yaml:2", r.Annotations)
			}
		}
	}
	want := map[string]string{deploy.CheckValidate + " (api)": "success", deploy.CheckValidate + " (web)": "failure"}
	if !maps.Equal(runs, want) {
		t.Fatalf("check runs %v, want %v", runs, want)
	}
}

func TestPush_ABrokenStagelyYAMLWatchesItsRootDirectoryAlone(t *testing.T) {
	t.Parallel()
	m := newMono(t)
	m.tree["services/api/stagely.yaml"] = []byte("watch_paths: libs/shared/**\n") // a string, not a list
	m.change()
	ev := m.change("libs/shared/util.txt")
	got := m.e.pushEvent(m.api, ev)
	if want := "ignored: api: no change under services/api/, web: no change under services/web/ (1 file changed)"; got != want {
		t.Fatalf("decision %q, want %q", got, want)
	}
	// A change to the broken file itself deploys, and the deployment says what is wrong.
	m.tree["services/api/stagely.yaml"] = []byte("watch_paths: libs/**\n")
	ev = m.change()
	ev.Commits[0].Modified = []string{"services/api/stagely.yaml"}
	if got := m.e.pushEvent(m.api, ev); !strings.HasPrefix(got, "deployed as #1 (api)") {
		t.Fatalf("decision %q", got)
	}
	if d := m.e.latest(m.api); d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "watch_paths must be a list") {
		t.Fatalf("deployment %s %q, want a failure naming watch_paths", d.Status, d.Error)
	}
}
