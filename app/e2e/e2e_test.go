package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// TestPushToDeploy drives the whole loop in one installation, in order: each step builds on
// the deployments of the ones before (a rollback needs an earlier good deploy).
func TestPushToDeploy(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "version 1\n"}
	s.putSecret("global", "GREETING", "hello $USER")

	var goodSHA string
	t.Run("push to the deploy branch deploys and reports success", func(t *testing.T) {
		goodSHA = s.push("main", repo.Files(), "first")
		run := s.deployCheck(goodSHA, 1, 3*time.Minute)
		if run.Conclusion != "success" {
			t.Fatalf("check run %q: %s\n%s\n%s", run.Conclusion, run.Title, run.Summary, run.Text)
		}
		t.Logf("check run %q\n%s\n%s", run.Title, run.Summary, tail(run.Text, 15))
		if !contains(run.Summary, "web", "worker", "running") {
			t.Fatalf("summary lacks the service table:\n%s", run.Summary)
		}
		if !strings.Contains(run.Text, "migrating the database") {
			t.Fatalf("log tail lacks the pre_deploy hook's output:\n%s", run.Text)
		}
		// The agent's plan reached the running check run, and the final summary repeats it.
		planned := false
		for _, c := range s.sim.CallsMatching("PATCH", "/repos/*/*/check-runs/*") {
			planned = planned || strings.Contains(string(c.Body), `"in_progress"`) && strings.Contains(string(c.Body), "Plan:")
		}
		if !planned || !strings.Contains(run.Summary, "**Plan:**") {
			t.Fatalf("the plan is missing from the running check run (%v) or the summary:\n%s", planned, run.Summary)
		}
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 1\n" {
			t.Fatalf("service answered %q", got)
		}
		assertStatus(t, s, goodSHA, "success")
		assertDeploymentStatus(t, s, goodSHA, "success")
		if len(run.Actions) == 0 || run.Actions[0].Identifier != "redeploy" {
			t.Fatalf("completed check run has no Redeploy button: %+v", run.Actions)
		}
		if strings.Contains(run.Text, "hello $USER") {
			t.Fatal("a secret value reached the check run")
		}
	})

	t.Run("push with a failing health check rolls back and says which service", func(t *testing.T) {
		bad := repo
		bad.Page, bad.HealthPort, bad.Grace = "version 2\n", 9999, "6s"
		sha := s.push("main", bad.Files(), "break health")
		run := s.deployCheck(sha, 1, 3*time.Minute)
		if run.Conclusion != "failure" || !strings.Contains(run.Title, "web") {
			t.Fatalf("check run %q %q\n%s", run.Conclusion, run.Title, run.Summary)
		}
		t.Logf("check run %q\n%s", run.Title, run.Summary)
		ds := s.deployments()
		if ds[0].SHA != sha || ds[0].Status != store.DeploymentRolledBack {
			t.Fatalf("deployment of the broken commit: %s %q", ds[0].Status, ds[0].Error)
		}
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 1\n" {
			t.Fatalf("after rollback the service answered %q, want the previous version", got)
		}
		assertStatus(t, s, sha, "failure")
		var rollback bool
		for _, a := range run.Actions {
			rollback = rollback || a.Identifier == "rollback"
		}
		if !rollback {
			t.Fatalf("no Roll back button although %s deployed fine: %+v", goodSHA[:7], run.Actions)
		}
	})

	t.Run("other branches, tags and branch deletions deploy nothing", func(t *testing.T) {
		before := len(s.deployments())
		s.push("feature/x", repo.Files(), "feature work")
		d := s.lastDelivery()
		if !strings.Contains(d.Decision, "ignored: push to feature/x, project web deploys main") {
			t.Fatalf("decision %q", d.Decision)
		}
		if _, err := s.sim.PushTag(s.ctx, s.repo, "v1.0.0", "main"); err != nil {
			t.Fatal(err)
		}
		if d := s.lastDelivery(); !strings.Contains(d.Decision, "ignored: tag push") {
			t.Fatalf("tag decision %q", d.Decision)
		}
		if _, err := s.sim.DeleteBranch(s.ctx, s.repo, "feature/x"); err != nil {
			t.Fatal(err)
		}
		if d := s.lastDelivery(); !strings.Contains(d.Decision, "ignored: branch feature/x deleted") {
			t.Fatalf("deletion decision %q", d.Decision)
		}
		if after := len(s.deployments()); after != before {
			t.Fatalf("%d deployments were created", after-before)
		}
	})

	t.Run("a redelivery is not run twice and a bad signature is refused", func(t *testing.T) {
		before := len(s.deployments())
		fixed := repo
		fixed.Page = "version 3\n"
		sha := s.push("main", fixed.Files(), "version 3")
		id := s.lastDelivery().DeliveryID
		s.deployCheck(sha, 1, 3*time.Minute)
		re, err := s.sim.Redeliver(s.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// The server answers a redelivery only once it has recognised it, and a duplicate is
		// never processed: no deployment can appear after this answer.
		if re.StatusCode != http.StatusOK || !strings.Contains(string(re.ResponseBody), "duplicate") {
			t.Fatalf("redelivery answered %d %s, want 200 and a duplicate", re.StatusCode, re.ResponseBody)
		}
		if after := len(s.deployments()); after != before+1 {
			t.Fatalf("a push delivered twice made %d deployments", after-before)
		}

		var deliveries int
		_ = s.st.DB().QueryRow(`SELECT count(*) FROM webhook_deliveries`).Scan(&deliveries)
		req, _ := http.NewRequest(http.MethodPost, s.serverURL+"/webhooks/github", strings.NewReader(`{"ref":"refs/heads/main"}`))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "11111111-2222-3333-4444-555555555555")
		req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad signature answered %d %s", resp.StatusCode, body)
		}
		var after int
		_ = s.st.DB().QueryRow(`SELECT count(*) FROM webhook_deliveries`).Scan(&after)
		if after != deliveries {
			t.Fatal("a delivery with a bad signature was recorded")
		}
	})

	t.Run("two quick pushes: the older is superseded, the newer deployed", func(t *testing.T) {
		// Hold the agent back so both pushes queue behind one another.
		s.stopAgent(t)
		a, b := repo, repo
		a.Page, b.Page = "version 4a\n", "version 4b\n"
		older := s.push("main", a.Files(), "4a")
		newer := s.push("main", b.Files(), "4b")
		s.startAgent()
		skipped := s.deployCheck(older, 1, time.Minute)
		if skipped.Conclusion != "skipped" || !strings.Contains(skipped.Title, newer[:7]) {
			t.Fatalf("older check run: %q %q", skipped.Conclusion, skipped.Title)
		}
		run := s.deployCheck(newer, 1, 3*time.Minute)
		if run.Conclusion != "success" {
			t.Fatalf("newer check run: %q %s", run.Conclusion, run.Summary)
		}
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 4b\n" {
			t.Fatalf("service answered %q", got)
		}
		goodSHA = newer
	})

	t.Run("Re-run, Re-run all and Roll back redeploy through GitHub's buttons", func(t *testing.T) {
		first := s.deployCheck(goodSHA, 1, time.Minute)
		if _, err := s.sim.SendCheckRunRerequested(s.ctx, s.repo, first.ID); err != nil {
			t.Fatal(err)
		}
		if run := s.deployCheck(goodSHA, 2, 3*time.Minute); run.Conclusion != "success" {
			t.Fatalf("re-run: %q %s", run.Conclusion, run.Summary)
		}
		if _, err := s.sim.SendCheckSuiteRerequested(s.ctx, s.repo, goodSHA); err != nil {
			t.Fatal(err)
		}
		if run := s.deployCheck(goodSHA, 3, 3*time.Minute); run.Conclusion != "success" {
			t.Fatalf("re-run all: %q %s", run.Conclusion, run.Summary)
		}
		ds := s.deployments()
		if ds[0].Trigger != store.TriggerRerunAll || ds[1].Trigger != store.TriggerRerun {
			t.Fatalf("triggers: %s, %s", ds[0].Trigger, ds[1].Trigger)
		}

		// Roll back from the newest deploy goes to the last good deploy of another commit.
		var v3 string
		for _, d := range ds {
			if d.Status == store.DeploymentSuccess && d.SHA != goodSHA {
				v3 = d.SHA
				break
			}
		}
		latest := s.deployCheck(goodSHA, 3, time.Minute)
		if _, err := s.sim.SendCheckRunRequestedAction(s.ctx, s.repo, latest.ID, "rollback"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 3*time.Minute, "rollback deployment finished", func() bool {
			d := s.deployments()[0]
			return d.Trigger == store.TriggerRollback && d.Finished()
		})
		if d := s.deployments()[0]; d.SHA != v3 || d.Status != store.DeploymentSuccess {
			t.Fatalf("roll back deployed %s (%s), want %s", d.SHA[:7], d.Status, v3[:7])
		}
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "version 3\n" {
			t.Fatalf("after roll back the service answered %q", got)
		}
	})

	t.Run("metrics count webhooks, deployments and connected agents", func(t *testing.T) {
		resp, err := http.Get(s.serverURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(b)
		for _, want := range []string{
			`stagely_webhooks_total{event="push",outcome="accepted"}`,
			`stagely_webhooks_total{event="push",outcome="duplicate"} 1`,
			`stagely_webhooks_total{event="push",outcome="ignored"}`,
			`stagely_deployments_total{status="success"}`,
			`stagely_deployments_total{status="rolled_back"} 1`,
			`stagely_deploy_duration_seconds_count{status="success"}`,
			"stagely_agents_connected 1",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("a pull request with a broken stagely.yaml fails validation on the right line", func(t *testing.T) {
		broken := repo
		broken.StagelyYAML = "version: \"1.0\"\ndeployment:\n  timeout: 30s\n  strategy: sideways\n"
		sha := s.push("fix/config", broken.Files(), "broken config")
		if _, err := s.sim.SendPullRequest(s.ctx, s.repo, "opened", githubsim.PullRequest{Number: 7, Title: "Fix config", Head: "fix/config"}); err != nil {
			t.Fatal(err)
		}
		var run githubsim.CheckRun
		waitFor(t, 30*time.Second, "validate check run", func() bool {
			for _, r := range s.sim.CheckRuns(s.repo, sha) {
				if r.Name == "Stagely / validate" && r.Status == "completed" {
					run = r
					return true
				}
			}
			return false
		})
		if run.Conclusion != "failure" {
			t.Fatalf("validate: %q %s", run.Conclusion, run.Summary)
		}
		var onLine4 bool
		for _, a := range run.Annotations {
			onLine4 = onLine4 || (a.Path == "stagely.yaml" && a.StartLine != nil && *a.StartLine == 4 && a.AnnotationLevel == "failure")
		}
		if !onLine4 {
			t.Fatalf("no failure annotation at stagely.yaml:4: %+v", run.Annotations)
		}
	})
}

func assertStatus(t *testing.T, s *stack, sha, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, "commit status "+want, func() bool {
		sts := s.sim.Statuses(s.repo, sha)
		return len(sts) > 0 && sts[len(sts)-1].State == want && sts[len(sts)-1].Context == "stagely/deploy"
	})
}

func assertDeploymentStatus(t *testing.T, s *stack, sha, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, "deployment status "+want, func() bool {
		for _, d := range s.sim.Deployments(s.repo) {
			if d.SHA != sha {
				continue
			}
			sts := s.sim.DeploymentStatuses(s.repo, d.ID)
			if len(sts) > 0 && sts[len(sts)-1].State == want {
				return true
			}
		}
		return false
	})
}

// lastDelivery waits for the newest delivery githubsim sent to be processed.
func (s *stack) lastDelivery() store.Delivery {
	s.t.Helper()
	ds := s.sim.Deliveries()
	if len(ds) == 0 {
		s.t.Fatal("githubsim sent no delivery")
	}
	return s.delivery(ds[len(ds)-1].ID)
}

// TestServerCrashMidDeployLosesNothing kills the server while the agent deploys; the agent
// finishes, journals the result, and delivers it to the restarted server, which reports it.
func TestServerCrashMidDeployLosesNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "survived\n"}
	repo.StagelyYAML = "version: \"1.0\"\nhooks:\n  pre_deploy:\n    - service: web\n      command: \"sleep 4\"\n"
	sha := s.push("main", repo.Files(), "slow deploy")
	s.waitRunning(time.Minute)
	if err := s.server.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.server.Done()
	// The deploy finishes while no server listens: the result can only be journaled.
	s.waitAgentFinishedJob(2 * time.Minute)
	s.startServer()
	run := s.deployCheck(sha, 1, 2*time.Minute)
	if run.Conclusion != "success" {
		t.Fatalf("after the restart the check run is %q: %s", run.Conclusion, run.Summary)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "survived\n" {
		t.Fatalf("service answered %q", got)
	}
	if !strings.Contains(s.agent.out.String(), "disconnected from server") {
		t.Fatal("the agent never noticed the server was gone")
	}
}

// TestDeadAgentIsReportedOnGitHub pushes while the project's agent is not running: the
// deployment waits for it, then fails with "agent offline" on the check run.
func TestDeadAgentIsReportedOnGitHub(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noAgent: true, serverEnv: []string{"STAGELY_AGENT_OFFLINE_WAIT=3s"}})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "never\n"}
	sha := s.push("main", repo.Files(), "nobody home")
	run := s.deployCheck(sha, 1, time.Minute)
	if run.Conclusion != "failure" || !strings.Contains(run.Title+run.Summary, "agent offline") {
		t.Fatalf("check run %q %q\n%s", run.Conclusion, run.Title, run.Summary)
	}
	assertStatus(t, s, sha, "failure")
}
