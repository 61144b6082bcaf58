package deployer_test

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/protocol"
)

// fastRepo is a project whose api is built from ./api (which copies app.txt in and whose
// .dockerignore leaves *.md out) and whose web runs a plain image.
func fastRepo(img string, change map[string]string) map[string]string {
	loop := "    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n"
	files := map[string]string{
		"compose.yaml":      "services:\n  api:\n    build: ./api\n" + loop + "  web:\n    image: " + img + "\n" + loop,
		"api/Dockerfile":    "FROM " + img + "\nCOPY app.txt /app.txt\n",
		"api/.dockerignore": "*.md\n",
		"api/app.txt":       "app v1\n",
		"api/notes.md":      "notes v1\n",
		"README.md":         "shop v1\n",
	}
	maps.Copy(files, change)
	return files
}

// composeCalls counts the compose commands a Deployer runs, by kind.
type composeCalls struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *composeCalls) observe(sub string, args []string, _ time.Duration, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case sub == "up" && slices.Contains(args, "--no-start"):
		sub = "build"
	case sub == "up" && slices.Contains(args, "--wait"):
		sub = "hook-deps"
	}
	c.counts[sub]++
}

func (c *composeCalls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

func TestDeploy_NothingToChangeSkipsTheBuildAndTheSwapButEveryChangeComposeSeesDeploys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := &composeCalls{counts: map[string]int{}}
	e.d = deployer.New(deployer.Options{DataDir: e.dataDir, DefaultGracePeriod: 30 * time.Second,
		Compose: compose.NewRunner(compose.RunnerOptions{Observe: calls.observe})})
	apiImage := e.project + "-api"
	steps := []struct {
		name   string
		change map[string]string
		// before runs ahead of the deploy.
		before    func(t *testing.T)
		wantPlan  protocol.Plan
		wantBuild bool
		wantUp    bool
	}{
		{name: "first deploy builds and creates everything",
			wantPlan: protocol.Plan{Create: []string{"api", "web"}}, wantBuild: true, wantUp: true},
		{name: "the same commit again builds nothing and touches nothing",
			wantPlan: protocol.Plan{Unchanged: []string{"api", "web"}}},
		{name: "a README outside every build context builds nothing", change: map[string]string{"README.md": "shop v2\n"},
			wantPlan: protocol.Plan{Unchanged: []string{"api", "web"}}},
		{name: "a file the .dockerignore leaves out builds nothing", change: map[string]string{"api/notes.md": "notes v2\n"},
			wantPlan: protocol.Plan{Unchanged: []string{"api", "web"}}},
		{name: "a changed file in the build context rebuilds and recreates", change: map[string]string{"api/app.txt": "app v2\n"},
			wantPlan: protocol.Plan{Recreate: []string{"api"}, Unchanged: []string{"web"}}, wantBuild: true, wantUp: true},
		{name: "a changed Dockerfile rebuilds and recreates", change: map[string]string{"api/app.txt": "app v2\n", "api/Dockerfile": "FROM " + e.image + "\nCOPY app.txt /app.txt\nENV V=3\n"},
			wantPlan: protocol.Plan{Recreate: []string{"api"}, Unchanged: []string{"web"}}, wantBuild: true, wantUp: true},
		{name: "a removed image is built again", change: map[string]string{"api/app.txt": "app v2\n", "api/Dockerfile": "FROM " + e.image + "\nCOPY app.txt /app.txt\nENV V=3\n"},
			before: func(t *testing.T) {
				if out, err := exec.Command("docker", "rmi", "-f", apiImage).CombinedOutput(); err != nil {
					t.Fatalf("docker rmi %s: %v: %s", apiImage, err, out)
				}
			},
			// The rebuilt image comes from the build cache: the same id, so compose has nothing to recreate.
			wantPlan: protocol.Plan{Unchanged: []string{"api", "web"}}, wantBuild: true},
		{name: "a changed environment recreates without a build", change: map[string]string{"api/app.txt": "app v2\n", "api/Dockerfile": "FROM " + e.image + "\nCOPY app.txt /app.txt\nENV V=3\n",
			"compose.yaml": "services:\n  api:\n    build: ./api\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n  web:\n    image: " + e.image + "\n    environment: {GREETING: hi}\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n"},
			wantPlan: protocol.Plan{Recreate: []string{"web"}, Unchanged: []string{"api"}}, wantUp: true},
	}
	for i, st := range steps {
		if st.before != nil {
			st.before(t)
		}
		calls.take()
		before := e.containerIDs()
		var prev *protocol.Previous
		if i > 0 {
			prev = &protocol.Previous{SHA: sha(i)}
		}
		res, rec := e.deploy(ctxFor(t), e.job(sha(i+1), fastRepo(e.image, st.change), protocol.JobConfig{}, nil, prev))
		requireStatus(t, res, protocol.StatusSuccess, rec)
		if got := rec.plan(t); fmt.Sprint(got) != fmt.Sprint(st.wantPlan) {
			t.Fatalf("%s: plan = %+v, want %+v\n%s", st.name, got, st.wantPlan, rec.text())
		}
		n := calls.take()
		if got := n["build"] > 0; got != st.wantBuild {
			t.Errorf("%s: build step ran %d times, want it to run: %v\n%s", st.name, n["build"], st.wantBuild, rec.text())
		}
		if got := n["up"] > 0; got != st.wantUp {
			t.Errorf("%s: up ran %d times, want it to run: %v\n%s", st.name, n["up"], st.wantUp, rec.text())
		}
		after := e.containerIDs()
		for _, svc := range []string{"api", "web"} {
			recreated := before[svc] != after[svc]
			if want := slices.Contains(st.wantPlan.Recreate, svc) || slices.Contains(st.wantPlan.Create, svc); recreated != want {
				t.Errorf("%s: %s recreated: %v, want %v", st.name, svc, recreated, want)
			}
		}
		if st.wantPlan.Empty() && !strings.Contains(rec.text(), "nothing to change: no container is touched") {
			t.Errorf("%s: log does not say no container is touched:\n%s", st.name, rec.text())
		}
		for _, s := range res.Services {
			if s.State != "running" {
				t.Errorf("%s: %s is %s", st.name, s.Name, s.State)
			}
		}
	}
}

// A rollback in the job that built the failed version reads the previous commit's build
// inputs afresh: the working directory holds another commit by then, so the inputs this job
// computed before describe the failed version, not the one it goes back to.
func TestDeploy_RollbackRebuildsThePreviousImageOfABuiltService(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	health := "    healthcheck:\n      test: [\"CMD\", \"grep\", \"-q\", \"good\", \"/app.txt\"]\n      interval: 1s\n      retries: 2\n"
	repo := func(app string) map[string]string {
		files := fastRepo(e.image, map[string]string{"api/app.txt": app})
		files["compose.yaml"] = "services:\n  api:\n    build: ./api\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n" + health
		return files
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), repo("good v1\n"), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)

	cfg := protocol.JobConfig{Services: map[string]protocol.ServiceConfig{"api": {HealthCheckGracePeriod: protocol.Duration(5 * time.Second)}}}
	res, rec = e.redeploy(repo("bad v2\n"), cfg, nil)
	requireStatus(t, res, protocol.StatusRolledBack, rec)
	out, err := exec.Command("docker", "exec", e.containerIDs()["api"], "cat", "/app.txt").CombinedOutput()
	if err != nil || string(out) != "good v1\n" {
		t.Fatalf("api after the rollback serves %q (%v), want the previous version's %q\n%s", out, err, "good v1\n", rec.text())
	}
}
