package deploy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/waittest"
)

// sweep runs one pass of o and waits for the GitHub reports it started.
func (e *env) sweep(o *deploy.Orchestrator) {
	e.t.Helper()
	o.Sweep(e.ctx)
	o.Wait()
}

// wantReported fails unless the check run of p's sha concluded success and p's latest
// deployment is recorded as reported; when says after what.
func (e *env) wantReported(p store.Project, sha, when string) {
	e.t.Helper()
	if run := e.checkRun(p, sha); run.Conclusion != "success" {
		e.t.Fatalf("%s the check run is %q", when, run.Conclusion)
	}
	if d := e.latest(p); d.ReportedStatus != store.DeploymentSuccess {
		e.t.Fatalf("%s the deployment is reported %q", when, d.ReportedStatus)
	}
}

// completions counts the attempts to complete a check run of repo that reached GitHub.
func (e *env) completions(repo string) int {
	n := 0
	for _, c := range e.sim.CallsMatching(http.MethodPatch, "/repos/"+repo+"/check-runs/*") {
		if strings.Contains(string(c.Body), `"conclusion"`) {
			n++
		}
	}
	return n
}

// TestSweeper_RetriesAFailingReportWithABackoffKeptInTheDatabase (fault 8): a report GitHub
// keeps refusing is retried after 30 s, then 1 min, then 2 min, ... rather than on every
// sweep, and a restarted server keeps the schedule.
func TestSweeper_RetriesAFailingReportWithABackoffKeptInTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, sha := e.project(&a)
	e.push(p, sha)
	fault, err := e.sim.AddFault(githubsim.Fault{Method: http.MethodPatch, Path: "/repos/*/*/check-runs/*", Kind: githubsim.FaultBadGateway})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.orch.JobResult(e.ctx, a.ID, protocol.JobResult{JobID: jobIDOf(e.latest(p)), Status: protocol.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		wait     time.Duration
		restart  bool
		attempts int
	}{
		{0, false, 1},                // the report made when the result came
		{29 * time.Second, false, 1}, // first retry after 30 s
		{2 * time.Second, false, 2},
		{2 * time.Second, false, 2},  // not on every sweep: the next waits 1 min
		{58 * time.Second, false, 3}, // 1 min after the second attempt
		{time.Minute, true, 3},       // a restarted server keeps the 2 min wait
		{61 * time.Second, true, 4},
	}
	o := e.orch
	for i, s := range steps {
		e.clock.Advance(s.wait)
		if s.restart {
			o = deploy.New(e.opts)
		}
		e.sweep(o)
		if got := e.completions(p.RepoFullName); got != s.attempts {
			t.Fatalf("step %d (+%s): %d attempts to report, want %d", i, s.wait, got, s.attempts)
		}
	}
	e.sim.RemoveFault(fault)
	e.clock.Advance(5 * time.Minute)
	e.sweep(o)
	e.wantReported(p, sha, "after GitHub recovered")
}

// TestSweeper_ASlowReportNeverStallsTheLoop (fault 8): a report GitHub does not answer ends
// at its own deadline; meanwhile the sweep goes on, other deployments are reported and the
// hung one is not started twice.
func TestSweeper_ASlowReportNeverStallsTheLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.ReportTimeout = 3 * time.Second
	e.orch = deploy.New(e.opts)
	slowAgent, fastAgent := e.idleAgent("slow"), e.idleAgent("fast")
	slow, _ := e.project(&slowAgent)
	fast, fastSHA := e.project(&fastAgent)
	e.failGitHub(failCompleteCheckRun)
	for _, x := range []struct {
		p store.Project
		a store.Agent
	}{{slow, slowAgent}, {fast, fastAgent}} {
		e.push(x.p, e.latestSHA(x.p))
		if err := e.orch.JobResult(e.ctx, x.a.ID, protocol.JobResult{JobID: jobIDOf(e.latest(x.p)), Status: protocol.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	e.failGitHub(0)
	hung := e.hold(slow.RepoFullName)
	e.clock.Advance(time.Minute)

	swept := make(chan struct{})
	go func() {
		e.orch.Sweep(e.ctx)
		close(swept)
	}()
	select {
	case <-swept:
	case <-time.After(20 * time.Second):
		t.Fatal("a report GitHub does not answer stalled the sweep")
	}
	waittest.Until(t, 20*time.Second, "the other project's report", func() bool {
		return e.latest(fast).ReportedStatus == store.DeploymentSuccess
	})
	if run := e.checkRun(fast, fastSHA); run.Conclusion != "success" {
		t.Fatalf("fast project's check run %q", run.Conclusion)
	}
	<-hung
	e.sweep(e.orch) // waits for the hung report too, which its deadline ends
	if n := len(hung); n != 0 {
		t.Fatalf("the hung report was started %d more times while it ran", n)
	}
	if d := e.latest(slow); d.ReportedStatus == store.DeploymentSuccess {
		t.Fatal("a report that timed out counted as made")
	}
}
