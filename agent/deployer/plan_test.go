package deployer_test

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/protocol"
)

// planRepo is a repository whose api is built from a Dockerfile (tag in its image), whose
// web reads an env_file and keeps a named volume, and whose worker is plain: the shapes
// compose decides a recreate for in different ways.
func planRepo(img, tag, webEnv string, worker bool) map[string]string {
	loop := `command: ["sh", "-c", "while :; do sleep 1; done"]` + "\n    init: true\n"
	compose := "services:\n" +
		"  api:\n    build: ./api\n    " + loop +
		"  web:\n    image: " + img + "\n    env_file: web.env\n    volumes: [webdata:/data]\n    " + loop
	if worker {
		compose += "  worker:\n    image: " + img + "\n    environment: {ROLE: worker}\n    " + loop
	}
	compose += "volumes:\n  webdata:\n"
	return map[string]string{
		"compose.yaml":   compose,
		"api/Dockerfile": fmt.Sprintf("FROM %s\nRUN echo %s > /tag\n", img, tag),
		"web.env":        "GREETING=" + webEnv + "\n",
		"README.md":      "readme " + tag + webEnv + "\n",
	}
}

func TestDeploy_PlanNamesWhatTheSwapWillChangeBeforeItStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Each step deploys the next commit over the previous one; a pre_deploy hook that fails
	// shows that a plan with nothing to change runs no hook.
	failingHook := protocol.JobConfig{Hooks: protocol.Hooks{PreDeploy: []protocol.Hook{{Service: "worker", Command: "exit 9"}}}}
	steps := []struct {
		name      string
		files     map[string]string
		cfg       protocol.JobConfig
		secret    string
		want      protocol.Plan
		recreated []string
	}{
		{name: "first deploy creates everything", files: planRepo(e.image, "a", "hi", true),
			want: protocol.Plan{Create: []string{"api", "web", "worker"}}},
		{name: "a changed Dockerfile recreates only the built service", files: planRepo(e.image, "b", "hi", true),
			want: protocol.Plan{Recreate: []string{"api"}, Unchanged: []string{"web", "worker"}}, recreated: []string{"api"}},
		{name: "a commit that changes no service changes nothing and runs no hook", files: planRepo(e.image, "b", "hi", true), cfg: failingHook,
			want: protocol.Plan{Unchanged: []string{"api", "web", "worker"}}},
		{name: "a changed env_file recreates its service", files: planRepo(e.image, "b", "hello", true),
			want: protocol.Plan{Recreate: []string{"web"}, Unchanged: []string{"api", "worker"}}, recreated: []string{"web"}},
		{name: "a changed secret recreates its service", files: planRepo(e.image, "b", "hello", true), secret: "s2",
			want: protocol.Plan{Recreate: []string{"worker"}, Unchanged: []string{"api", "web"}}, recreated: []string{"worker"}},
		{name: "a service dropped from the compose file is removed", files: planRepo(e.image, "b", "hello", false), secret: "s2",
			want: protocol.Plan{Unchanged: []string{"api", "web"}, Remove: []string{"worker"}}},
	}
	for i, st := range steps {
		before := e.containerIDs()
		var prev *protocol.Previous
		if i > 0 {
			prev = &protocol.Previous{SHA: sha(i)}
		}
		secrets := []protocol.Secret{{Key: "TOKEN", Value: "secret-" + st.secret + "-value", Scope: "worker"}}
		res, rec := e.deploy(ctxFor(t), e.job(sha(i+1), st.files, st.cfg, secrets, prev))
		requireStatus(t, res, protocol.StatusSuccess, rec)
		if strings.Contains(rec.text(), "Bake") {
			t.Errorf("%s: compose's Bake warning reached the log:\n%s", st.name, rec.text())
		}
		got := rec.plan(t)
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("%s: plan = %+v, want %+v", st.name, got, st.want)
		}
		if slices.Contains(rec.phases[:rec.planAt], protocol.PhaseDeploying) {
			t.Errorf("%s: the plan came after the swap began (phases before it: %v)", st.name, rec.phases[:rec.planAt])
		}
		if i == 0 {
			continue
		}
		after := e.containerIDs()
		var recreated []string
		for svc, id := range after {
			if before[svc] != id {
				recreated = append(recreated, svc)
			}
		}
		slices.Sort(recreated)
		if !slices.Equal(recreated, st.recreated) {
			t.Errorf("%s: compose recreated %v, the plan said %v", st.name, recreated, st.recreated)
		}
		requireChanges(t, st.name, res, st.want)
		if got.Empty() && !strings.Contains(rec.text(), "nothing to change") {
			t.Errorf("%s: the log does not say there is nothing to change:\n%s", st.name, rec.text())
		}
	}
}

// requireChanges reports an error unless the result's table names every service of the
// plan with its change, and a removed one as gone.
func requireChanges(t *testing.T, step string, res protocol.JobResult, want protocol.Plan) {
	t.Helper()
	var got, wantAll []string
	for _, s := range res.Services {
		got = append(got, s.Name+": "+s.Change)
		if s.Change == protocol.ChangeRemove && s.State != "removed" {
			t.Errorf("%s: removed service %s is %s, want removed", step, s.Name, s.State)
		}
	}
	for _, l := range want.Lists() {
		for _, n := range *l.Names {
			wantAll = append(wantAll, n+": "+l.Change)
		}
	}
	slices.Sort(got)
	slices.Sort(wantAll)
	if !slices.Equal(got, wantAll) {
		t.Errorf("%s: result's services = %v, want %v", step, got, wantAll)
	}
}

// restartRepo is a db whose environment carries version, an api that depends on it with
// `restart: true` and a web that depends on it without.
func restartRepo(img, version string) map[string]string {
	loop := "    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n"
	return map[string]string{"compose.yaml": "services:\n" +
		"  db:\n    image: " + img + "\n    environment: {VERSION: " + version + "}\n" + loop +
		"  api:\n    image: " + img + "\n    depends_on: {db: {condition: service_started, restart: true}}\n" + loop +
		"  web:\n    image: " + img + "\n    depends_on: [db]\n" + loop}
}

func TestDeploy_PlanNamesTheServicesComposeRestartsForARecreatedDependency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), restartRepo(e.image, "v1"), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	before := e.containerIDs()
	started := startTimes(t, before)

	res, rec = e.redeploy(restartRepo(e.image, "v2"), protocol.JobConfig{}, nil)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	want := protocol.Plan{Recreate: []string{"db"}, Restart: []string{"api"}, Unchanged: []string{"web"}}
	if got := rec.plan(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("plan = %+v, want %+v", got, want)
	}
	requireChanges(t, "redeploy", res, want)
	after := e.containerIDs()
	restarted := startTimes(t, after)
	switch {
	case after["db"] == before["db"]:
		t.Error("db kept its container; want it recreated")
	case after["api"] != before["api"] || restarted["api"] == started["api"]:
		t.Errorf("api: container %s -> %s, started %s -> %s; want the same container restarted", before["api"], after["api"], started["api"], restarted["api"])
	case after["web"] != before["web"] || restarted["web"] != started["web"]:
		t.Error("web was restarted or recreated; its depends_on has no restart: true")
	}
}

// stopFirstRepo is three services that append "started <svc> <version>" to a shared log
// when they start and "stopped <svc> <version>" when they are stopped.
func stopFirstRepo(img, backendVersion string) map[string]string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, svc := range []string{"web", "backend", "worker"} {
		v := "v1"
		if svc == "backend" {
			v = backendVersion
		}
		fmt.Fprintf(&b, "  %s:\n    image: %s\n    init: true\n    volumes: [./data:/data]\n", svc, img)
		fmt.Fprintf(&b, "    command: [\"sh\", \"-c\", \"echo started %s %s >> /data/log; trap 'echo stopped %s %s >> /data/log; exit 0' TERM; while :; do sleep 1; done\"]\n", svc, v, svc, v)
	}
	return map[string]string{"compose.yaml": b.String(), "data/.keep": ""}
}

func TestDeploy_StopFirstStopsOnlyTheServicesThePlanRecreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := protocol.JobConfig{Strategy: protocol.StrategyStopFirst}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), stopFirstRepo(e.image, "v1"), cfg, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	before := e.containerIDs()
	started := startTimes(t, before)

	res, rec = e.redeploy(stopFirstRepo(e.image, "v2"), cfg, nil)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if p := rec.plan(t); !slices.Equal(p.Recreate, []string{"backend"}) {
		t.Fatalf("plan = %+v, want backend recreated", p)
	}
	after := e.containerIDs()
	for _, svc := range []string{"web", "worker"} {
		if after[svc] != before[svc] || startTimes(t, after)[svc] != started[svc] {
			t.Errorf("%s was stopped or recreated; stop-first must leave unchanged services running", svc)
		}
	}
	if after["backend"] == before["backend"] {
		t.Fatal("backend kept its container")
	}
	if !strings.Contains(rec.text(), "stop-first: stopping backend\n") {
		t.Errorf("log lacks the stop of backend alone:\n%s", rec.text())
	}
	// The shared log shows the old backend stopped before the new one started.
	var events []string
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, e.src("data/log"))), "\n") {
		if strings.Contains(l, "backend") {
			events = append(events, l)
		}
	}
	if want := []string{"started backend v1", "stopped backend v1", "started backend v2"}; !slices.Equal(events, want) {
		t.Errorf("backend's life = %q, want %q", events, want)
	}
}

// startTimes returns, per service, when its container last started.
func startTimes(t *testing.T, ids map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, svc := range slices.Sorted(maps.Keys(ids)) {
		s, err := execOutput("docker", "inspect", "--format", "{{.State.StartedAt}}", ids[svc])
		if err != nil {
			t.Fatalf("inspect %s: %v", svc, err)
		}
		out[svc] = strings.TrimSpace(s)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
