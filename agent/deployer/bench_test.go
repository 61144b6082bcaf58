package deployer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

// BenchmarkDeployOverhead compares a bare `docker compose up -d` with the agent's whole
// deploy (fetch, sync, config, override, build/pull check, up, verify) of the same
// three-service project. Each iteration runs every arm once, side by side, and changes one
// environment value of the backend service (in the compose file for the bare arm, as a
// secret for the agent), so each arm recreates exactly one container; the benchmark checks
// that from compose's own output.
//
// ns/op is the sum of the arms; read the metrics: bare-ms, agent-ms, x-bare (agent/bare),
// agent-cli-ms (the agent going through the docker CLI instead of running the compose
// plugin directly), the agent's phases (fetch-ms, build-phase-ms, up-ms, verify-ms) and its
// compose commands (cmd-config-ms, cmd-build-ms, cmd-up-ms, cmd-ps-ms, cmds: commands per deploy).
func BenchmarkDeployOverhead(b *testing.B) {
	img := dockertest.BusyboxImage(b)
	ctx := context.Background()
	files := func(backend string) string {
		return composeFile(img, svc{name: "web", version: "v1"}, svc{name: "backend", version: backend}, svc{name: "worker", version: "v1"})
	}

	bareProject := dockertest.ProjectName("stg-bench-bare")
	b.Cleanup(func() { dockertest.Down(b, bareProject) })
	bareFile := filepath.Join(b.TempDir(), "compose.yaml")
	bare := func(n int) time.Duration {
		if err := os.WriteFile(bareFile, []byte(files(fmt.Sprintf("v%d", n))), 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := exec.CommandContext(ctx, "docker", "compose", "-p", bareProject, "-f", bareFile, "up", "-d", "--remove-orphans").CombinedOutput()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("up: %v: %s", err, out)
		}
		checkRecreated(b, n, strings.Split(string(out), "\n"), bareProject, "backend")
		return took
	}

	cmds := &commandClock{}
	agent := newAgentArm(b, "stg-bench-agent", files("v1"), compose.NewRunner(compose.RunnerOptions{Observe: cmds.observe}))
	viaCLI := newAgentArm(b, "stg-bench-cli", files("v1"), compose.NewRunner(compose.RunnerOptions{Docker: "docker"}))

	// The first deploy of each arm creates its containers; only redeploys are measured.
	bare(0)
	agent.deploy(b, 0)
	viaCLI.deploy(b, 0)
	cmds.reset()
	var tBare, tAgent, tCLI time.Duration
	phases := map[string]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		tBare += bare(i + 1)
		took, ph := agent.deploy(b, i+1)
		tAgent += took
		for k, v := range ph {
			phases[k] += v
		}
		took, _ = viaCLI.deploy(b, i+1)
		tCLI += took
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(tBare), "bare-ms")
	b.ReportMetric(per(tAgent), "agent-ms")
	b.ReportMetric(float64(tAgent)/float64(tBare), "x-bare")
	b.ReportMetric(per(tCLI), "agent-cli-ms")
	reportAgentMetrics(b, phases, cmds)
}

// reportAgentMetrics reports the agent's phases and compose commands, per deploy.
func reportAgentMetrics(b *testing.B, phases map[string]time.Duration, cmds *commandClock) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	for _, ph := range []string{protocol.PhaseFetching, protocol.PhaseBuilding, protocol.PhaseDeploying, protocol.PhaseVerifying} {
		b.ReportMetric(per(phases[ph]), phaseMetric[ph])
	}
	cmds.mu.Lock()
	defer cmds.mu.Unlock()
	var n int
	for _, k := range []string{"config", "build", "up", "ps"} {
		b.ReportMetric(per(cmds.took[k]), "cmd-"+k+"-ms")
		n += cmds.count[k]
	}
	b.ReportMetric(float64(n)/float64(b.N), "cmds")
}

var phaseMetric = map[string]string{
	protocol.PhaseFetching:  "fetch-ms",
	protocol.PhaseBuilding:  "build-phase-ms",
	protocol.PhaseDeploying: "up-ms",
	protocol.PhaseVerifying: "verify-ms",
}

// agentArm redeploys one project through a Deployer, changing a backend secret each time,
// or deploying filesAt(n) as commit n when set.
type agentArm struct {
	project string
	files   map[string]string
	filesAt func(n int) map[string]string
	// recreated is the service each redeploy must recreate.
	recreated string
	gh        *fakeGitHub
	d         *deployer.Deployer
}

func newAgentArm(b *testing.B, name, composeYAML string, runner *compose.Runner) *agentArm {
	a := &agentArm{
		project:   dockertest.ProjectName(name),
		files:     map[string]string{"compose.yaml": composeYAML},
		recreated: "backend",
		gh:        newFakeGitHub(b),
		d:         deployer.New(deployer.Options{DataDir: b.TempDir(), Compose: runner}),
	}
	b.Cleanup(func() { dockertest.Down(b, a.project) })
	return a
}

// deploy deploys commit n and returns how long Deploy took and how long each phase lasted.
func (a *agentArm) deploy(b *testing.B, n int) (time.Duration, map[string]time.Duration) {
	s := sha(n)
	files := a.files
	if a.filesAt != nil {
		files = a.filesAt(n)
	}
	a.gh.publish(b, s, files)
	job := protocol.Deploy{
		JobID: fmt.Sprintf("bench-%d", n), Project: protocol.Project{ComposeProject: a.project}, Repo: "acme/shop", SHA: s,
		Source:  protocol.Source{TarballURL: a.gh.url(s), Token: testToken},
		Secrets: []protocol.Secret{{Key: "BUILD", Value: fmt.Sprintf("value-%d", n), Scope: "backend"}},
	}
	if n > 0 {
		job.Previous = &protocol.Previous{SHA: sha(n - 1)}
	}
	clock := &phaseClock{}
	start := time.Now()
	res := a.d.Deploy(context.Background(), job, clock)
	took := time.Since(start)
	if res.Status != protocol.StatusSuccess {
		b.Fatalf("deploy: %s: %s", res.Status, res.Error)
	}
	checkRecreated(b, n, clock.lines, a.project, a.recreated)
	if n > 0 && a.recreated == "" && !slices.ContainsFunc(clock.lines, func(l string) bool { return strings.Contains(l, "nothing to change") }) {
		b.Fatalf("a redeploy that changes no service did not plan nothing to change:\n%s", strings.Join(clock.lines, "\n"))
	}
	return took, clock.phases(start.Add(took))
}

// checkRecreated fails the benchmark unless a redeploy's compose output shows exactly the
// service's container recreated (none when service is ""): otherwise the arms would not do
// the same work.
func checkRecreated(b *testing.B, n int, lines []string, project, service string) {
	b.Helper()
	if n == 0 {
		return
	}
	var got []string
	for _, l := range lines {
		if name, ok := strings.CutSuffix(strings.TrimSpace(l), "  Recreated"); ok {
			got = append(got, strings.TrimPrefix(name, "Container "))
		}
	}
	var want []string
	if service != "" {
		want = []string{project + "-" + service + "-1"}
	}
	if !slices.Equal(got, want) {
		b.Fatalf("recreated %v, want %v", got, want)
	}
}

// phaseClock is the Events of one benchmarked deploy: it notes when each phase began.
type phaseClock struct {
	mu     sync.Mutex
	order  []string
	starts []time.Time
	lines  []string
}

func (c *phaseClock) Phase(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order = append(c.order, p)
	c.starts = append(c.starts, time.Now())
}

func (c *phaseClock) Plan(protocol.Plan) {}

func (c *phaseClock) Log(_, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, line)
}

func (c *phaseClock) phases(end time.Time) map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]time.Duration{}
	for i, p := range c.order {
		next := end
		if i+1 < len(c.starts) {
			next = c.starts[i+1]
		}
		out[p] += next.Sub(c.starts[i])
	}
	return out
}

// commandClock adds up how long the agent's compose commands take, by kind.
type commandClock struct {
	mu    sync.Mutex
	took  map[string]time.Duration
	count map[string]int
}

func (c *commandClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.took, c.count = nil, nil
}

func (c *commandClock) observe(sub string, args []string, took time.Duration, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.took == nil {
		c.took, c.count = map[string]time.Duration{}, map[string]int{}
	}
	if sub == "up" && slices.Contains(args, "--no-start") {
		sub = "build"
	}
	c.took[sub] += took
	c.count[sub]++
}
