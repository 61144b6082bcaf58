package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/store"
)

// The faults of issue 15, each played with the real binaries, PostgreSQL and Docker; the
// outcome of each is in docs/faults.md.

// fastLiveness makes the server ping agents every second and give up on one after 5 s of
// silence, so a connection the server stops listening to, or that stops delivering, shows
// within seconds (and a loaded machine's scheduling delays do not).
var fastLiveness = []string{"STAGELY_AGENT_PING_INTERVAL=1s", "STAGELY_AGENT_PONG_TIMEOUT=5s"}

// latest returns the project's newest deployment.
func (s *stack) latest() store.Deployment {
	s.t.Helper()
	ds := s.deployments()
	if len(ds) == 0 {
		s.t.Fatal("no deployment")
	}
	return ds[0]
}

// waitDeployment waits until the project's newest deployment satisfies ok and returns it.
func (s *stack) waitDeployment(within time.Duration, what string, ok func(store.Deployment) bool) store.Deployment {
	s.t.Helper()
	var d store.Deployment
	waitFor(s.t, within, what, func() bool {
		ds, err := s.st.DeploymentsByProject(s.ctx, s.project.ID, 1)
		if err != nil || len(ds) == 0 {
			return false
		}
		d = ds[0]
		return ok(d)
	})
	return d
}

// waitRunning waits until the project's newest deployment runs on the agent and returns it.
func (s *stack) waitRunning(within time.Duration) store.Deployment {
	s.t.Helper()
	return s.waitDeployment(within, "deployment running", func(d store.Deployment) bool { return d.Status == store.DeploymentRunning })
}

// waitAgentFinishedJob waits until the agent logs that it finished a job.
func (s *stack) waitAgentFinishedJob(within time.Duration) {
	s.t.Helper()
	waitFor(s.t, within, "the agent to finish the deploy", func() bool {
		return strings.Contains(s.agent.out.String(), `msg="job finished"`)
	})
}

// stopAgent stops the agent and waits until the server has marked it offline.
func (s *stack) stopAgent(t *testing.T) {
	t.Helper()
	s.agent.stop(t)
	waitFor(t, 20*time.Second, "agent offline", func() bool {
		a, _ := s.st.AgentByID(s.ctx, s.agentRow.ID)
		return a.Status == store.AgentOffline
	})
}

// waitLogLine waits until a stored log line of deployment id contains text.
func (s *stack) waitLogLine(id int64, text string, within time.Duration) {
	s.t.Helper()
	waitFor(s.t, within, fmt.Sprintf("log line %q of deployment #%d", text, id), func() bool {
		lines, err := s.st.Logs(s.ctx, id, 0, 100000)
		if err != nil {
			return false
		}
		for _, l := range lines {
			if strings.Contains(l.Line, text) {
				return true
			}
		}
		return false
	})
}

// completeLog reads a deployment's stored log and fails unless its seq runs 1, 2, 3… with
// no gap; it returns the lines' text.
func (s *stack) completeLog(id int64) []string {
	s.t.Helper()
	lines, err := s.st.Logs(s.ctx, id, 0, 100000)
	if err != nil {
		s.t.Fatal(err)
	}
	var text []string
	for i, l := range lines {
		if l.Seq != int64(i+1) {
			s.t.Fatalf("deployment #%d: line %d has seq %d: a gap in the stored log\n%s", id, i+1, l.Seq, strings.Join(text, "\n"))
		}
		text = append(text, l.Line)
	}
	return text
}

// tickHook prints "tick 1" … "tick n", one a second.
func tickHook(n int) string {
	return fmt.Sprintf("i=0; while [ $i -lt %d ]; do i=$((i+1)); echo tick $i; sleep 1; done", n)
}

// assertTicks fails unless log holds "tick 1" … "tick n" once each, in order.
func assertTicks(t *testing.T, log []string, n int) {
	t.Helper()
	next := 1
	for _, l := range log {
		if !strings.HasPrefix(l, "tick ") {
			continue
		}
		if l != fmt.Sprintf("tick %d", next) {
			t.Fatalf("stored log has %q where tick %d was due:\n%s", l, next, strings.Join(log, "\n"))
		}
		next++
	}
	if next != n+1 {
		t.Fatalf("stored log has %d of %d ticks:\n%s", next-1, n, strings.Join(log, "\n"))
	}
}

// TestFault6_SlowGitHubNeverDropsAHealthyAgent: GitHub answers each call after 8 s, longer
// than the 5 s the server waits for a pong, while the server reports the agent's result. The
// hub's reader keeps reading (pongs included) while the result is stored and reported on the
// agent's worker: the connection stays up, the deploy completes, one result.
func TestFault6_SlowGitHubNeverDropsAHealthyAgent(t *testing.T) {
	t.Parallel()
	var api *slowAPI
	s := newStack(t, stackOptions{
		githubAPI: func(u string) string { api = newSlowAPI(t, u); return api.url },
		serverEnv: fastLiveness,
	})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "patience\n", Hook: "echo migrating; sleep 2"}
	sha := s.push("main", repo.Files(), "deploy behind a slow GitHub")
	s.waitRunning(2 * time.Minute)
	api.slow(8 * time.Second)
	d := s.waitDeployment(3*time.Minute, "deployment finished", store.Deployment.Finished)
	run := s.deployCheck(sha, 1, 3*time.Minute)
	// The check run is one of the result's reports; the commit status and the deployment
	// status follow it, so GitHub stays slow until a second report has waited too, however
	// late the deploy finished relative to api.slow.
	waitFor(t, 2*time.Minute, "a second report through the slow GitHub", func() bool { return api.calls.Load() >= 2 })
	api.slow(0)
	if d.Status != store.DeploymentSuccess || run.Conclusion != "success" {
		t.Fatalf("deployment %s %q, check run %q", d.Status, d.Error, run.Conclusion)
	}
	if out := s.server.out.String(); strings.Contains(out, "agent silent") || strings.Contains(out, `"msg":"agent connection ended"`) {
		t.Fatalf("the server dropped the agent while GitHub was slow:\n%s", tail(out, 40))
	}
	agentLog := s.agent.out.String()
	if strings.Contains(agentLog, "disconnected from server") {
		t.Fatalf("the agent was disconnected while GitHub was slow:\n%s", tail(agentLog, 40))
	}
	if n := strings.Count(agentLog, `msg="job finished"`); n != 1 {
		t.Fatalf("the agent finished the job %d times, want 1", n)
	}
	if n := len(s.deployments()); n != 1 {
		t.Fatalf("%d deployments, want 1", n)
	}
	waitFor(t, time.Minute, "the result acknowledged", func() bool {
		return strings.Count(s.agent.out.String(), `msg="result acknowledged"`) == 1
	})
}

// TestFault4_WebSocketCutMidDeployLosesNoLogLine: mid-deploy the network between agent and
// server starts swallowing every byte (the agent's writes still succeed) until the server
// gives up on the silent connection. The deploy goes on; after the reconnect the agent sends
// again every line the server had not confirmed: the stored log is complete and ordered, and
// there is one result.
func TestFault4_WebSocketCutMidDeployLosesNoLogLine(t *testing.T) {
	t.Parallel()
	var proxy *tcpProxy
	s := newStack(t, stackOptions{
		agentServerURL: func(u string) string {
			proxy = newTCPProxy(t, strings.TrimPrefix(u, "http://"))
			return "http://" + proxy.addr()
		},
		serverEnv: fastLiveness,
	})
	const ticks = 20
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "cut\n", Hook: tickHook(ticks)}
	sha := s.push("main", repo.Files(), "deploy across a cut")
	d := s.waitRunning(2 * time.Minute)
	s.waitLogLine(d.ID, "tick 3", time.Minute)
	if n := proxy.blackhole(); n != 1 {
		t.Fatalf("%d agent connections through the proxy, want 1", n)
	}
	waitFor(t, time.Minute, "the agent to notice the dead connection", func() bool {
		return strings.Contains(s.agent.out.String(), "disconnected from server")
	})
	s.wantDeployed(sha, 3*time.Minute, "the deploy")
	log := s.completeLog(d.ID)
	assertTicks(t, log, ticks)
	if last := log[len(log)-1]; last != "deployed "+sha[:7] {
		t.Fatalf("last stored line %q, want the deploy's last line", last)
	}
	if n := strings.Count(s.agent.out.String(), `msg="job finished"`); n != 1 {
		t.Fatalf("the agent finished the job %d times, want 1", n)
	}
	if d := s.latest(); d.Status != store.DeploymentSuccess || len(s.deployments()) != 1 {
		t.Fatalf("deployment %s, %d deployments; want one success", d.Status, len(s.deployments()))
	}
}

// TestFault2_PostgresRestartedMidDeploy: the database stops while the agent deploys and
// starts again after the agent finished. The deploy finishes on the agent; its log lines and
// result, held meanwhile, are stored once the database is back; the check run completes.
func TestFault2_PostgresRestartedMidDeploy(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	s := newStack(t, stackOptions{dsn: pg.url()})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "outage\n",
		// The hook outlasts stopping PostgreSQL by far, so its last line and the result reach
		// the server while the database is down, even on a loaded machine.
		Hook: "echo before the outage; sleep 10; echo during the outage"}
	sha := s.push("main", repo.Files(), "deploy across a database restart")
	d := s.waitRunning(2 * time.Minute)
	s.waitLogLine(d.ID, "before the outage", time.Minute)
	pg.stop()
	s.waitAgentFinishedJob(2 * time.Minute)
	pg.start()
	s.wantDeployed(sha, 3*time.Minute, "the deploy")
	// The fault was played: the hub had to retry a write the database refused.
	if out := s.server.out.String(); !strings.Contains(out, ": retrying") {
		t.Fatalf("no write met the outage (the server never retried one):\n%s", tail(out, 40))
	}
	log := s.completeLog(d.ID)
	joined := strings.Join(log, "\n")
	if !contains(joined, "before the outage", "during the outage", "deployed "+sha[:7]) {
		t.Fatalf("stored log lacks lines of the outage:\n%s", joined)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "outage\n" {
		t.Fatalf("service answered %q", got)
	}
	if d := s.latest(); d.Status != store.DeploymentSuccess || len(s.deployments()) != 1 {
		t.Fatalf("deployment %s, %d deployments; want one success", d.Status, len(s.deployments()))
	}
}

// TestFault3_AgentKilledMidDeploy: the agent is SIGKILLed in the middle of a deploy and
// started again. It finds the interrupted job in its journal, brings the project to a known
// state and reports "agent restarted during the deploy"; the next push deploys normally.
func TestFault3_AgentKilledMidDeploy(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "version 1\n"}
	page := func() string { return httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)) }
	first := s.push("main", repo.Files(), "version 1")
	s.wantDeployed(first, 3*time.Minute, "first deploy")
	// Each case kills the agent while a hook of the new version runs (marker in the log).
	kills := []struct {
		name, page, hook, yaml, marker string
		// says is what the deployment's error must say; served is the page afterwards.
		says, served string
	}{
		{name: "killed before the swap: the previous version keeps serving", page: "version 2\n",
			hook: "echo hook started; sleep 30", marker: "hook started", says: "nothing was swapped", served: "version 1\n"},
		{name: "killed after the swap: the new version is verified healthy", page: "version 3\n",
			yaml:   "version: \"1.0\"\nhooks:\n  post_deploy:\n    - service: web\n      command: \"echo post started; sleep 30\"\n",
			marker: "post started", says: "running and healthy", served: "version 3\n"},
	}
	for _, k := range kills {
		t.Run(k.name, func(t *testing.T) {
			v := repo
			v.Page, v.Hook, v.StagelyYAML = k.page, k.hook, k.yaml
			sha := s.push("main", v.Files(), strings.TrimSpace(k.page))
			d := s.waitRunning(2 * time.Minute)
			s.waitLogLine(d.ID, k.marker, 2*time.Minute)
			if err := s.agent.Kill(); err != nil {
				t.Fatal(err)
			}
			<-s.agent.Done()
			s.startAgent()
			run := s.deployCheck(sha, 1, 2*time.Minute)
			got := s.waitDeployment(time.Minute, "deployment finished", store.Deployment.Finished)
			if got.ID != d.ID || run.Conclusion != "failure" || !strings.Contains(got.Error, "agent restarted during the deploy") {
				t.Fatalf("deployment #%d: %s %q; check run %q", got.ID, got.Status, got.Error, run.Conclusion)
			}
			t.Logf("outcome: %s", got.Error)
			if !strings.Contains(got.Error, k.says) {
				t.Fatalf("error %q does not say %q", got.Error, k.says)
			}
			if p := page(); p != k.served {
				t.Fatalf("service answered %q, want %q", p, k.served)
			}
		})
	}

	t.Run("the next push deploys normally", func(t *testing.T) {
		v4 := repo
		v4.Page = "version 4\n"
		sha := s.push("main", v4.Files(), "version 4")
		s.wantDeployed(sha, 3*time.Minute, "version 4")
		if p := page(); p != "version 4\n" {
			t.Fatalf("service answered %q", p)
		}
	})
}

// TestFault7_AgentConnectSettlesDeploymentsItDoesNotHold: a deployment marked dispatched
// whose DEPLOY never left the server (it crashed in between), and one recorded running that
// the agent has never heard of. When the agent connects its HELLO lists the jobs it holds:
// the first is sent again and deploys, the second fails at once with a message that says why.
func TestFault7_AgentConnectSettlesDeploymentsItDoesNotHold(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	// Stopped after a first connection, so the agent has a recent heartbeat: the sweeper
	// leaves its deployments alone for STAGELY_AGENT_LOST_AFTER.
	s.stopAgent(t)
	repo := samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "resent\n"}
	sha := s.push("main", repo.Files(), "dispatched, never sent")
	lost := s.waitDeployment(time.Minute, "deployment queued", func(d store.Deployment) bool { return d.Status == store.DeploymentQueued })
	if err := s.st.MarkDispatched(s.ctx, lost.ID, s.agentRow.ID, time.Now()); err != nil {
		t.Fatal(err)
	}

	other := s.otherProject("acme/api")
	unknown, err := s.st.CreateDeployment(s.ctx, store.NewDeployment{ProjectID: other.ID, SHA: strings.Repeat("c", 40), Ref: "refs/heads/main", Trigger: store.TriggerPush})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.MarkDispatched(s.ctx, unknown.ID, s.agentRow.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.st.MarkRunning(s.ctx, unknown.ID, s.agentRow.ID, time.Now()); err != nil {
		t.Fatal(err)
	}

	s.startAgent()
	// "At once": well within the sweeper's bounds (the job's timeout plus 5 minutes).
	waitFor(t, 30*time.Second, "the unknown running deployment failed", func() bool {
		d, err := s.st.DeploymentByID(s.ctx, unknown.ID)
		return err == nil && d.Finished()
	})
	if d, _ := s.st.DeploymentByID(s.ctx, unknown.ID); d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "does not know this job") {
		t.Fatalf("unknown deployment: %s %q", d.Status, d.Error)
	}
	s.wantDeployed(sha, 2*time.Minute, "resent deployment")
	if d, _ := s.st.DeploymentByID(s.ctx, lost.ID); d.Status != store.DeploymentSuccess {
		t.Fatalf("resent deployment #%d: %s %q", lost.ID, d.Status, d.Error)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", repo.Port)); got != "resent\n" {
		t.Fatalf("service answered %q", got)
	}
}

// otherProject links a second repository to the stack's agent.
func (s *stack) otherProject(repo string) store.Project {
	s.t.Helper()
	if err := s.sim.CreateRepo(s.installation, repo, "main"); err != nil {
		s.t.Fatal(err)
	}
	p, err := s.st.CreateProject(s.ctx, store.NewProject{
		UserID: s.project.UserID, InstallationID: s.project.InstallationID, Name: strings.ReplaceAll(repo, "/", "-"),
		RepoID: s.sim.RepoID(repo), RepoFullName: repo, DeployBranch: "main", AgentID: &s.agentRow.ID,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}
