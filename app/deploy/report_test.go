package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// TestReports_EachStageWritesWhatTheGoldenFileSays pins every write Stagely makes to GitHub
// (check runs, commit statuses, deployments and their statuses) from a push to a final
// report, stage by stage, so the reporter can change shape without changing behaviour.
func TestReports_EachStageWritesWhatTheGoldenFileSays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden string
		run    func(e *env)
	}{
		{"queued_then_superseded", func(e *env) {
			a := e.agent("box")
			p, first := e.project(&a)
			e.push(p, first)
			e.push(p, e.commit(p, "second"))
		}},
		{"started_with_a_warning_then_succeeded", func(e *env) {
			a := e.idleAgent("box")
			p, _ := e.project(&a)
			sha := e.commitFiles(p, map[string][]byte{
				"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
				"stagely.yaml": []byte("version: \"1.0\"\nservices:\n  web:\n    health_check_grace_period: 30s\n"),
			})
			e.deploy(a, p, sha, 12*time.Second, protocol.JobResult{Status: protocol.StatusSuccess,
				Services: []protocol.ServiceStatus{{Name: "web", State: "running", Health: "healthy", ContainerID: "0123456789abcdef"}}})
		}},
		{"rolled_back_to_the_previous_good", func(e *env) {
			a := e.idleAgent("box")
			p, good := e.project(&a)
			e.deploy(a, p, good, 3*time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
			bad := e.commit(p, "bad")
			e.deploy(a, p, bad, 95*time.Second, protocol.JobResult{Status: protocol.StatusRolledBack, Error: "service web is unhealthy after 60s",
				Services: []protocol.ServiceStatus{{Name: "web", State: "running", Health: "unhealthy", ContainerID: "abc", LogTail: []string{"panic"}}}})
		}},
		{"planned_then_succeeded_with_a_post_deploy_warning", func(e *env) {
			a := e.idleAgent("box")
			p, sha := e.project(&a)
			e.hub.setIdle(a.ID, true)
			e.push(p, sha)
			e.orch.JobPlan(e.ctx, a.ID, jobIDOf(e.latest(p)), protocol.Plan{Recreate: []string{"api"}, Unchanged: []string{"web", "worker"}})
			e.run(a, p, 4*time.Second, protocol.JobResult{Status: protocol.StatusSuccess,
				Error: "The deploy succeeded, but the post_deploy hook `./notify.sh` in api exited with code 7. The new version is live and was not rolled back.",
				Services: []protocol.ServiceStatus{
					{Name: "api", State: "running", ContainerID: "a1", Change: protocol.ChangeRecreate},
					{Name: "web", State: "running", ContainerID: "b2", Change: protocol.ChangeUnchanged},
					{Name: "worker", State: "running", ContainerID: "c3", Change: protocol.ChangeUnchanged},
				}})
		}},
		{"timed_out_and_cancelled", func(e *env) {
			a := e.idleAgent("box")
			p, first := e.project(&a)
			e.deploy(a, p, first, 61*time.Second, protocol.JobResult{Status: protocol.StatusTimedOut, Error: "deployment.timeout (60s) passed"})
			second := e.commit(p, "second")
			e.deploy(a, p, second, 2*time.Second, protocol.JobResult{Status: protocol.StatusCancelled})
		}},
		{"configuration_problems_fail_with_annotations", func(e *env) {
			a := e.idleAgent("box")
			p, _ := e.project(&a)
			e.push(p, e.commitFiles(p, map[string][]byte{
				"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
				"stagely.yaml": []byte("version: \"1.0\"\nhooks:\n  pre_deploy:\n    - service: db\n      command: migrate\n"),
			}))
		}},
		{"no_agent_linked", func(e *env) {
			p, sha := e.project(nil)
			e.push(p, sha)
		}},
		{"queued_report_refused_then_final_report_creates_the_check_run", func(e *env) {
			a := e.agent("box")
			p, sha := e.project(&a)
			e.failGitHub(failCreateCheckRun)
			e.push(p, sha)
			e.failGitHub(0)
			e.clock.Advance(11 * time.Minute)
			e.sweep(e.orch)
		}},
		{"installation_deleted_gives_up_and_records_it", func(e *env) {
			a := e.idleAgent("box")
			p, sha := e.project(&a)
			e.push(p, sha)
			if err := e.st.MarkInstallationDeleted(e.ctx, e.instGH, e.clock.Now()); err != nil {
				e.t.Fatal(err)
			}
			e.run(a, p, time.Second, protocol.JobResult{Status: protocol.StatusFailure, Error: "exit 1"})
			if d := e.latest(p); d.ReportedStatus != store.DeploymentFailure {
				e.t.Fatalf("a report no retry can fix is recorded as done, got reported_status %q", d.ReportedStatus)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.run(e)
			assertGolden(t, filepath.Join("testdata", "reports", tt.golden+".golden"), e.writes())
		})
	}
}

// commit adds a commit with a valid configuration to the project's deploy branch.
func (e *env) commit(p store.Project, name string) string {
	e.t.Helper()
	return e.commitFiles(p, map[string][]byte{
		"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
		"stagely.yaml": []byte("version: \"1.0\"\ndeployment:\n  timeout: 60s\n"),
		name + ".txt":  []byte(name),
	})
}

func (e *env) commitFiles(p store.Project, files map[string][]byte) string {
	e.t.Helper()
	sha, err := e.sim.Commit(e.ctx, p.RepoFullName, p.DeployBranch, files, "commit")
	if err != nil {
		e.t.Fatal(err)
	}
	return sha
}

// deploy pushes sha to the idle agent's project and plays the agent through the deployment
// the push makes (see run).
func (e *env) deploy(a store.Agent, p store.Project, sha string, took time.Duration, res protocol.JobResult) {
	e.t.Helper()
	e.hub.setIdle(a.ID, true)
	e.push(p, sha)
	e.run(a, p, took, res)
}

// run plays the agent for the project's latest deployment: it accepts the job, logs two
// lines, takes took, and sends res.
func (e *env) run(a store.Agent, p store.Project, took time.Duration, res protocol.JobResult) {
	e.t.Helper()
	d := e.latest(p)
	e.orch.JobAccepted(e.ctx, a.ID, jobIDOf(d))
	e.clock.Advance(took)
	lines := []store.LogLine{
		{Seq: 1, Stream: "stdout", Line: "Container web-1  Started", TS: e.clock.Now()},
		{Seq: 2, Stream: "stderr", Line: "web-1  | listening on :8080", TS: e.clock.Now()},
	}
	if err := e.st.AppendAgentLogs(e.ctx, d.ID, a.ID, lines); err != nil {
		e.t.Fatal(err)
	}
	res.JobID = jobIDOf(d)
	e.hub.setIdle(a.ID, true)
	if err := e.orch.JobResult(e.ctx, a.ID, res); err != nil {
		e.t.Fatal(err)
	}
}

var (
	fullSHA   = regexp.MustCompile(`\b[0-9a-f]{40}\b`)
	timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// writes lists the writes GitHub received, one per block, with commits named in order of
// appearance and times that vary from run to run replaced.
func (e *env) writes() string {
	e.t.Helper()
	var b strings.Builder
	for _, c := range e.sim.Calls() {
		if c.Method == "GET" || !strings.HasPrefix(c.Path, "/repos/") {
			continue
		}
		var body any
		if err := json.Unmarshal(c.Body, &body); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %v", c.Method, c.Path, err)
		}
		pretty, _ := json.MarshalIndent(body, "", "  ")
		fmt.Fprintf(&b, "%s %s -> %d\n%s\n\n", c.Method, c.Path, c.Status, pretty)
	}
	out := b.String()
	n := 0
	for _, sha := range fullSHA.FindAllString(out, -1) {
		if strings.Contains(out, sha) {
			n++
			out = strings.ReplaceAll(out, sha, fmt.Sprintf("<sha%d>", n))
			out = strings.ReplaceAll(out, sha[:7], fmt.Sprintf("<sha%d-short>", n))
		}
	}
	return timestamp.ReplaceAllString(out, "<time>")
}

// assertGolden compares got with a golden file and, on a mismatch, writes got beside it as
// .actual, for a person to diff and, if it is right, move into place.
func assertGolden(t *testing.T, golden, got string) {
	t.Helper()
	want, err := os.ReadFile(golden)
	if err == nil && bytes.Equal(want, []byte(got)) {
		_ = os.Remove(golden + ".actual")
		return
	}
	if werr := os.WriteFile(golden+".actual", []byte(got), 0o644); werr != nil {
		t.Fatalf("write %s.actual: %v", golden, werr)
	}
	if err != nil {
		t.Fatalf("read golden file: %v (actual output written to %s.actual)", err, golden)
	}
	t.Fatalf("GitHub writes differ from %s; actual written to %s.actual", golden, golden)
}
