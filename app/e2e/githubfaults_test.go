package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// reportWrites are the calls that tell GitHub about a deployment.
var reportWrites = []struct{ method, path string }{
	{http.MethodPost, "/repos/*/*/check-runs"},
	{http.MethodPatch, "/repos/*/*/check-runs/*"},
	{http.MethodPost, "/repos/*/*/statuses/*"},
	{http.MethodPost, "/repos/*/*/deployments"},
	{http.MethodPost, "/repos/*/*/deployments/*/statuses"},
}

// reportReads are the calls that can tell whether a write GitHub answered 502 was applied.
var reportReads = []string{
	"/repos/*/*/check-runs/*",
	"/repos/*/*/commits/*/check-runs",
	"/repos/*/*/commits/*/statuses",
	"/repos/*/*/deployments",
	"/repos/*/*/deployments/*/statuses",
}

// TestGitHubFaultsWriteEveryReportOnce (fault 5): while a push deploys, GitHub answers every
// report with 502s (some after carrying the write out), 403 secondary rate limits and 429s
// with Retry-After, and the lookups with 502s, a 403 secondary limit and 429s. Once GitHub
// recovers, the check run, the commit statuses and the deployment statuses are all there,
// each exactly once.
func TestGitHubFaultsWriteEveryReportOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{serverEnv: []string{"STAGELY_REPORT_RETRY_MIN=1s"}})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "through the storm\n"}

	limited := func(kind githubsim.FaultKind) githubsim.Fault {
		return githubsim.Fault{Kind: kind, RetryAfter: time.Second}
	}
	for _, w := range reportWrites {
		// In this order: a 502 after GitHub did the write, a 502 before it, a 403 secondary
		// rate limit, then 429s until the test lifts them.
		for _, f := range []githubsim.Fault{
			{Kind: githubsim.FaultBadGateway, Applied: true, Times: 1},
			{Kind: githubsim.FaultBadGateway, Times: 1},
			{Kind: githubsim.FaultSecondaryLimit, RetryAfter: time.Second, Times: 1},
			limited(githubsim.FaultTooManyRequests),
		} {
			f.Method, f.Path = w.method, w.path
			s.addFault(f)
		}
	}
	// A write answered 502 is sent again only once a lookup says GitHub does not hold it, and
	// while the lookups are refused nothing is sent: the lookups meet the secondary limit too.
	for _, p := range reportReads {
		s.addFault(githubsim.Fault{Method: http.MethodGet, Path: p, Kind: githubsim.FaultBadGateway, Times: 2})
		s.addFault(githubsim.Fault{Method: http.MethodGet, Path: p, Kind: githubsim.FaultSecondaryLimit, RetryAfter: time.Second, Times: 1})
		f := limited(githubsim.FaultTooManyRequests)
		f.Method, f.Path = http.MethodGet, p
		s.addFault(f)
	}
	// The checks made before a deploy: they are retried, and the push still deploys.
	s.addFault(githubsim.Fault{Method: http.MethodGet, Path: "/repos/*/*/git/ref/heads/*", Kind: githubsim.FaultBadGateway, Times: 2})
	s.addFault(githubsim.Fault{Method: http.MethodGet, Path: "/repos/*/*/collaborators/*/permission", Kind: githubsim.FaultTooManyRequests, RetryAfter: time.Second, Times: 2})

	sha := s.push("main", repo.Files(), "deploy during an outage")
	waitFor(t, 3*time.Minute, "the deployment to finish on the agent", func() bool {
		ds := s.deployments()
		return len(ds) == 1 && ds[0].Finished()
	})
	if d := s.deployments()[0]; d.Status != store.DeploymentSuccess {
		t.Fatalf("deployment %s %q", d.Status, d.Error)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "through the storm\n" {
		t.Fatalf("service answered %q", got)
	}
	// GitHub stays down while the final report is refused again and again: twice the five
	// attempts of one call at least, counted in githubsim's call log. A retried report asks
	// GitHub what an earlier attempt wrote before it writes (never blind: a write answered 502
	// may have been applied), so while the reads are refused its refused calls are those reads.
	finishedAt := s.faultedReportCalls()
	waitFor(t, 3*time.Minute, "the final report to be refused twice", func() bool {
		return s.faultedReportCalls() >= finishedAt+10
	})
	for _, status := range []int{http.StatusBadGateway, http.StatusForbidden, http.StatusTooManyRequests} {
		if !s.faultedWith(status) {
			t.Fatalf("no report call was answered %d: the faults did not happen", status)
		}
	}
	s.sim.ClearFaults()

	waitFor(t, 2*time.Minute, "GitHub to be told the final status", func() bool {
		d := s.deployments()[0]
		return d.ReportedStatus == d.Status
	})
	var runs []githubsim.CheckRun
	for _, r := range s.sim.CheckRuns(s.repo, sha) {
		if r.Name == "Stagely / deploy" {
			runs = append(runs, r)
		}
	}
	if len(runs) != 1 || runs[0].Status != "completed" || runs[0].Conclusion != "success" {
		t.Fatalf("check runs after the outage: %+v, want one completed success", runs)
	}
	seen := map[string]int{}
	var last string
	for _, st := range s.sim.Statuses(s.repo, sha) {
		if st.Context == "stagely/deploy" {
			seen[st.State+" "+st.Description]++
			last = st.State
		}
	}
	for what, n := range seen {
		if n > 1 {
			t.Errorf("commit status %q written %d times", what, n)
		}
	}
	if last != "success" {
		t.Errorf("the last commit status is %q, want success (%v)", last, seen)
	}
	deps := s.sim.Deployments(s.repo)
	if len(deps) != 1 {
		t.Fatalf("%d GitHub deployments, want 1: %+v", len(deps), deps)
	}
	states := map[string]int{}
	for _, st := range deps[0].Statuses {
		states[st.State]++
	}
	for state, n := range states {
		if n > 1 {
			t.Errorf("deployment status %s written %d times", state, n)
		}
	}
	if sts := deps[0].Statuses; len(sts) == 0 || sts[len(sts)-1].State != "success" {
		t.Errorf("deployment statuses %+v, want success last", sts)
	}
}

func (s *stack) addFault(f githubsim.Fault) {
	s.t.Helper()
	if _, err := s.sim.AddFault(f); err != nil {
		s.t.Fatal(err)
	}
}

// faultedReportCalls counts the report writes and lookups a fault answered so far.
func (s *stack) faultedReportCalls() int {
	calls := reportWrites
	for _, p := range reportReads {
		calls = append(calls[:len(calls):len(calls)], struct{ method, path string }{http.MethodGet, p})
	}
	n := 0
	for _, w := range calls {
		for _, c := range s.sim.CallsMatching(w.method, w.path) {
			if c.Faulted {
				n++
			}
		}
	}
	return n
}

// faultedWith says whether a fault answered some call with status.
func (s *stack) faultedWith(status int) bool {
	for _, c := range s.sim.Calls() {
		if c.Faulted && c.Status == status {
			return true
		}
	}
	return false
}
