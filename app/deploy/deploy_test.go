package deploy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/clocktest"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// fakeHub stands in for the agent connections; its fields say how agents behave.
type fakeHub struct {
	mu         sync.Mutex
	idle       map[int64]bool
	dispatched []protocol.Deploy
	cancelled  []string
}

func (h *fakeHub) Dispatch(_ context.Context, agentID int64, job protocol.Deploy) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dispatched = append(h.dispatched, job)
	h.idle[agentID] = false
	return nil
}

func (h *fakeHub) Cancel(_ int64, jobID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cancelled = append(h.cancelled, jobID)
	return nil
}
func (h *fakeHub) Idle(agentID int64) bool { h.mu.Lock(); defer h.mu.Unlock(); return h.idle[agentID] }
func (h *fakeHub) setIdle(agentID int64, idle bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idle[agentID] = idle
}
func (h *fakeHub) jobs() []protocol.Deploy {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]protocol.Deploy(nil), h.dispatched...)
}

// flakyGitHub is the real client with switches that make creating or completing check runs fail.
type flakyGitHub struct {
	*github.Installation
	env *env
}

// errGitHubDown is what GitHub answers while it is down.
var errGitHubDown = &github.APIError{StatusCode: 502, Message: "Server Error"}

func (f flakyGitHub) CreateCheckRun(ctx context.Context, repo string, cr github.NewCheckRun) (int64, error) {
	if f.env.failing(failCreateCheckRun) {
		return 0, errGitHubDown
	}
	return f.Installation.CreateCheckRun(ctx, repo, cr)
}

func (f flakyGitHub) CompleteCheckRun(ctx context.Context, repo string, id int64, res github.CheckRunResult) error {
	if f.env.failing(failCompleteCheckRun) {
		return errGitHubDown
	}
	if hold := f.env.held(repo); hold != nil {
		hold <- struct{}{}
		<-ctx.Done() // GitHub never answers: only the report's own deadline ends the call
		return ctx.Err()
	}
	return f.Installation.CompleteCheckRun(ctx, repo, id, res)
}

// The calls flakyGitHub can make fail.
const (
	failCreateCheckRun = 1 << iota
	failCompleteCheckRun
)

type env struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Store
	sim     *githubsim.Sim
	hub     *fakeHub
	orch    *deploy.Orchestrator
	clock   *clocktest.Clock
	opts    deploy.Options
	failMu  sync.Mutex
	failGH  int
	holds   map[string]chan struct{}
	user    store.User
	inst    store.Installation
	instGH  int64
	repoSeq int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	k := apptest.New(t, githubsim.Options{})
	e := &env{t: t, ctx: context.Background(), st: k.Store, sim: k.Sim, hub: &fakeHub{idle: map[int64]bool{}}, clock: clocktest.New()}
	e.instGH = e.sim.AddInstallation("acme")
	app := k.App(t, github.Options{MaxRetries: -1})
	e.opts = deploy.Options{
		Store: e.st, Hub: e.hub, Secrets: k.Secrets(), PublicURL: "http://stagely.test",
		GitHub: func(id int64) deploy.GitHub {
			return flakyGitHub{Installation: app.Installation(id), env: e}
		},
		Now:              e.clock.Now,
		AgentOfflineWait: 10 * time.Minute,
		AgentLostAfter:   5 * time.Minute,
		ResultGrace:      5 * time.Minute,
	}
	e.orch = deploy.New(e.opts)
	// alice owns the projects: a member of acme, which gives her write access to its repositories.
	aliceID := e.sim.AddUser("alice")
	if err := e.sim.AddInstallationMember(e.instGH, "alice"); err != nil {
		t.Fatal(err)
	}
	e.user, _ = e.st.UpsertUser(e.ctx, store.User{GitHubID: aliceID, Login: "alice"})
	inst, err := e.st.UpsertInstallation(e.ctx, store.Installation{GitHubID: e.instGH, AccountLogin: "acme", AccountID: 9, AccountType: "Organization"})
	if err != nil {
		t.Fatal(err)
	}
	e.inst = inst
	return e
}

// hold makes completing check runs of repo hang until the caller's context ends; each call
// that hangs sends on the returned channel first.
func (e *env) hold(repo string) <-chan struct{} {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	if e.holds == nil {
		e.holds = map[string]chan struct{}{}
	}
	ch := make(chan struct{}, 16)
	e.holds[repo] = ch
	return ch
}

func (e *env) held(repo string) chan struct{} {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	return e.holds[repo]
}

// failGitHub makes the calls in the mask fail until the next failGitHub.
func (e *env) failGitHub(mask int) { e.failMu.Lock(); e.failGH = mask; e.failMu.Unlock() }
func (e *env) failing(call int) bool {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	return e.failGH&call != 0
}

// project makes a repository with a valid configuration and a project for it on agent.
func (e *env) project(agent *store.Agent) (store.Project, string) {
	e.t.Helper()
	e.repoSeq++
	name := "acme/app" + string(rune('a'+e.repoSeq))
	if err := e.sim.CreateRepo(e.instGH, name, "main"); err != nil {
		e.t.Fatal(err)
	}
	sha, err := e.sim.Commit(e.ctx, name, "main", map[string][]byte{
		"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
		"stagely.yaml": []byte("version: \"1.0\"\ndeployment:\n  timeout: 60s\n"),
	}, "initial")
	if err != nil {
		e.t.Fatal(err)
	}
	np := store.NewProject{UserID: e.user.ID, InstallationID: e.inst.ID, Name: strings.ReplaceAll(name[5:], "/", "-"),
		RepoID: e.sim.RepoID(name), RepoFullName: name, DeployBranch: "main"}
	if agent != nil {
		np.AgentID = &agent.ID
	}
	p, err := e.st.CreateProject(e.ctx, np)
	if err != nil {
		e.t.Fatal(err)
	}
	return p, sha
}

// idleAgent makes an agent that is online with no job in flight.
func (e *env) idleAgent(name string) store.Agent {
	e.t.Helper()
	a := e.agent(name)
	e.hub.setIdle(a.ID, true)
	return a
}

func (e *env) agent(name string) store.Agent {
	e.t.Helper()
	a, err := e.st.CreateAgent(e.ctx, e.user.ID, name, func(int64) (string, error) { return "$2a$10$test", nil })
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) pushHandler() deploy.PushHandler { return deploy.NewPushHandler(e.orch) }

func (e *env) push(p store.Project, sha string) string {
	e.t.Helper()
	return e.handlePush(0, p, webhook.Push{After: sha})
}

func (e *env) latest(p store.Project) store.Deployment {
	e.t.Helper()
	ds, err := e.st.DeploymentsByProject(e.ctx, p.ID, 1)
	if err != nil || len(ds) == 0 {
		e.t.Fatalf("no deployment of %s: %v", p.Name, err)
	}
	return ds[0]
}

func (e *env) checkRun(p store.Project, sha string) githubsim.CheckRun {
	e.t.Helper()
	for _, r := range e.sim.CheckRuns(p.RepoFullName, sha) {
		if r.Name == deploy.CheckDeploy {
			return r
		}
	}
	e.t.Fatalf("no deploy check run on %s", sha[:7])
	return githubsim.CheckRun{}
}

func TestOrchestrator_DeploymentWaitsForAnOfflineAgentThenFailsWithAgentOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	p, sha := e.project(&a)
	if got := e.push(p, sha); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("decision %q", got)
	}
	if d := e.latest(p); d.Status != store.DeploymentQueued {
		t.Fatalf("with the agent offline the deployment is %s, want queued", d.Status)
	}
	if run := e.checkRun(p, sha); run.Status != "queued" {
		t.Fatalf("check run %s, want queued while waiting", run.Status)
	}
	e.clock.Advance(9 * time.Minute)
	e.sweep(e.orch)
	if d := e.latest(p); d.Status != store.DeploymentQueued {
		t.Fatalf("failed before the bound: %s", d.Status)
	}
	e.clock.Advance(2 * time.Minute)
	e.sweep(e.orch)
	d := e.latest(p)
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "agent offline") {
		t.Fatalf("after the bound: %s %q", d.Status, d.Error)
	}
	run := e.checkRun(p, sha)
	if run.Conclusion != "failure" || !strings.Contains(run.Title+run.Summary, "agent offline") {
		t.Fatalf("check run %q %q\n%s", run.Conclusion, run.Title, run.Summary)
	}
	if len(e.hub.jobs()) != 0 {
		t.Fatal("a job was dispatched to an offline agent")
	}
}

func TestOrchestrator_AgentComingOnlineStartsTheWaitingDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	p, sha := e.project(&a)
	e.push(p, sha)
	e.hub.setIdle(a.ID, true)
	e.orch.AgentConnected(e.ctx, a.ID, protocol.Hello{})
	jobs := e.hub.jobs()
	if len(jobs) != 1 || jobs[0].SHA != sha || jobs[0].Source.Token == "" || jobs[0].Config.ComposeFile != "compose.yaml" {
		t.Fatalf("dispatched %+v", jobs)
	}
	if jobs[0].Config.Timeout.Std() != time.Minute {
		t.Fatalf("timeout from stagely.yaml: %s", jobs[0].Config.Timeout.Std())
	}
	if run := e.checkRun(p, sha); run.Status != "in_progress" {
		t.Fatalf("check run %s after dispatch", run.Status)
	}
}

func TestOrchestrator_AgentVanishingMidJobFailsAfterTheBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	if err := e.st.MarkAgentConnected(e.ctx, a.ID, store.AgentHello{}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.hub.setIdle(a.ID, true)
	p, sha := e.project(&a)
	e.push(p, sha)
	if d := e.latest(p); d.Status != store.DeploymentDispatched {
		t.Fatalf("deployment %s, want dispatched", d.Status)
	}
	// The agent's server loses power: the hub marks it offline, its last heartbeat ages.
	_ = e.st.SetAgentStatus(e.ctx, a.ID, store.AgentOffline)
	e.clock.Advance(time.Minute)
	e.sweep(e.orch)
	if d := e.latest(p); d.Finished() {
		t.Fatalf("failed before the bound: %s", d.Status)
	}
	e.clock.Advance(5 * time.Minute)
	e.sweep(e.orch)
	d := e.latest(p)
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "disconnected during the deployment") {
		t.Fatalf("after the bound: %s %q", d.Status, d.Error)
	}
	e.hub.mu.Lock()
	cancelled := append([]string(nil), e.hub.cancelled...)
	e.hub.mu.Unlock()
	if len(cancelled) != 1 || cancelled[0] != jobIDOf(d) {
		t.Fatalf("the failed job was not cancelled on the agent: %v", cancelled)
	}
	if run := e.checkRun(p, sha); run.Conclusion != "failure" {
		t.Fatalf("check run %q", run.Conclusion)
	}
	// A result that arrives after all is acknowledged and changes nothing.
	if err := e.orch.JobResult(e.ctx, a.ID, protocol.JobResult{JobID: jobIDOf(d), Status: protocol.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if again := e.latest(p); again.Status != store.DeploymentFailure {
		t.Fatalf("a late result rewrote history: %s", again.Status)
	}
}

func TestOrchestrator_ResultTwiceIsRecordedAndReportedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, sha := e.project(&a)
	e.push(p, sha)
	d := e.latest(p)
	res := protocol.JobResult{JobID: jobIDOf(d), Status: protocol.StatusSuccess, DurationMS: 1200,
		Services: []protocol.ServiceStatus{{Name: "web", State: "running", ContainerID: "abc123"}}}
	for i := 0; i < 2; i++ {
		if err := e.orch.JobResult(e.ctx, a.ID, res); err != nil {
			t.Fatal(err)
		}
	}
	completions := 0
	for _, c := range e.sim.CallsMatching("PATCH", "/repos/"+p.RepoFullName+"/check-runs/*") {
		if strings.Contains(string(c.Body), `"conclusion"`) {
			completions++
		}
	}
	if completions != 1 {
		t.Fatalf("the check run was completed %d times", completions)
	}
	if got := e.latest(p); got.Status != store.DeploymentSuccess || got.ReportedStatus != store.DeploymentSuccess {
		t.Fatalf("deployment %s reported %q", got.Status, got.ReportedStatus)
	}
}

func TestOrchestrator_AReportGitHubRefusedIsRetriedByTheSweeper(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, sha := e.project(&a)
	e.push(p, sha)
	e.failGitHub(failCompleteCheckRun)
	if err := e.orch.JobResult(e.ctx, a.ID, protocol.JobResult{JobID: jobIDOf(e.latest(p)), Status: protocol.StatusSuccess}); err != nil {
		t.Fatalf("a GitHub outage must not refuse the agent's result: %v", err)
	}
	if d := e.latest(p); d.Status != store.DeploymentSuccess || d.ReportedStatus != "" {
		t.Fatalf("after the refused report: %s reported %q", d.Status, d.ReportedStatus)
	}
	if run := e.checkRun(p, sha); run.Status == "completed" {
		t.Fatal("check run completed although GitHub refused")
	}
	e.failGitHub(0)
	e.sweep(e.orch)
	if run := e.checkRun(p, sha); run.Status == "completed" {
		t.Fatal("the sweeper reported a deployment that had only just finished")
	}
	e.clock.Advance(time.Minute)
	e.sweep(e.orch)
	e.wantReported(p, sha, "after the sweep")
}

func TestOrchestrator_ProjectWithoutAgentFailsSayingWhatToDo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p, sha := e.project(nil)
	e.push(p, sha)
	d := e.latest(p)
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "link one in the Stagely dashboard") {
		t.Fatalf("%s %q", d.Status, d.Error)
	}
}

func TestOrchestrator_OneAgentRunsItsProjectsOneAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p1, sha1 := e.project(&a)
	p2, sha2 := e.project(&a)
	e.push(p1, sha1)
	e.push(p2, sha2)
	if jobs := e.hub.jobs(); len(jobs) != 1 || jobs[0].SHA != sha1 {
		t.Fatalf("dispatched %d jobs while the agent was busy", len(jobs))
	}
	if d := e.latest(p2); d.Status != store.DeploymentQueued {
		t.Fatalf("second project's deployment %s, want queued behind the first", d.Status)
	}
	e.hub.setIdle(a.ID, true) // the hub frees the agent before reporting the result
	if err := e.orch.JobResult(e.ctx, a.ID, protocol.JobResult{JobID: jobIDOf(e.latest(p1)), Status: protocol.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if jobs := e.hub.jobs(); len(jobs) != 2 || jobs[1].SHA != sha2 {
		t.Fatalf("after the first result: %d jobs", len(jobs))
	}
}

func TestOrchestrator_BrokenConfigFailsWithAnnotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, _ := e.project(&a)
	sha, err := e.sim.Commit(e.ctx, p.RepoFullName, "main", map[string][]byte{
		"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
		"stagely.yaml": []byte("version: \"1.0\"\nhooks:\n  pre_deploy:\n    - service: db\n      command: migrate\n"),
	}, "hook on a missing service")
	if err != nil {
		t.Fatal(err)
	}
	e.push(p, sha)
	d := e.latest(p)
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "stagely.yaml:4") {
		t.Fatalf("%s %q", d.Status, d.Error)
	}
	run := e.checkRun(p, sha)
	if len(run.Annotations) == 0 || run.Annotations[0].Path != "stagely.yaml" || *run.Annotations[0].StartLine != 4 {
		t.Fatalf("annotations %+v", run.Annotations)
	}
	if len(e.hub.jobs()) != 0 {
		t.Fatal("a broken configuration was sent to the agent")
	}
}

func jobIDOf(d store.Deployment) string { return strconv.FormatInt(d.ID, 10) }

func TestOrchestrator_ResultFromAnotherAgentChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	intruder := e.agent("intruder")
	e.hub.setIdle(a.ID, true)
	p, _ := e.project(&a)
	sha := e.latestSHA(p)
	e.push(p, sha)
	d := e.latest(p)
	if err := e.orch.JobResult(e.ctx, intruder.ID, protocol.JobResult{JobID: jobIDOf(d), Status: protocol.StatusFailure, Error: "forged"}); err != nil {
		t.Fatal(err)
	}
	e.orch.JobAccepted(e.ctx, intruder.ID, jobIDOf(d))
	if got := e.latest(p); got.Status != store.DeploymentDispatched || got.Error != "" {
		t.Fatalf("another agent's report changed the deployment: %s %q", got.Status, got.Error)
	}
}

func (e *env) latestSHA(p store.Project) string { return e.sim.Branch(p.RepoFullName, "main") }

// TestHandlers_DecideEveryActionInOneLine walks one project through the webhooks its users
// cause after a push: Re-run, the deploy check run's buttons, Re-run all, pull requests.
func TestHandlers_DecideEveryActionInOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, good := e.project(&a)
	e.deploy(a, p, good, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	bad := e.commit(p, "bad")
	e.deploy(a, p, bad, time.Second, protocol.JobResult{Status: protocol.StatusFailure})
	goodRun, badRun := e.checkRun(p, good).ID, e.checkRun(p, bad).ID
	origin := webhook.Origin{Repo: webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}, InstallationID: e.instGH}
	checkRun := func(action, button string, id int64) webhook.CheckRun {
		return webhook.CheckRun{Action: action, RequestedActionIdentifier: button, CheckRunID: id, Name: deploy.CheckDeploy,
			HeadSHA: good, Origin: origin}
	}
	pr := func(action, sha string) webhook.PullRequest {
		return webhook.PullRequest{Action: action, Number: 7, HeadSHA: sha, Origin: origin}
	}
	suite := func(action, branch string) webhook.CheckSuite {
		return webhook.CheckSuite{Action: action, HeadSHA: bad, HeadBranch: branch, Origin: origin}
	}
	runs := intake.On(deploy.NewCheckRunHandler(e.orch).Handle)
	suites := intake.On(deploy.NewCheckSuiteHandler(e.orch).Handle)
	prs := intake.On(deploy.NewPullRequestHandler(e.orch).Handle)
	steps := []struct {
		h    intake.EventHandler
		ev   webhook.Event
		want string
	}{
		{runs, checkRun("created", "", goodRun), "ignored: check_run created"},
		{runs, checkRun("rerequested", "", 999), "ignored: check run 999 is not a Stagely deployment"},
		{runs, checkRun("requested_action", "deploy-everything", 999), "ignored: check run 999 is not a Stagely deployment"},
		{runs, checkRun("requested_action", "deploy-everything", goodRun), `ignored: unknown check run action "deploy-everything"`},
		{runs, checkRun("requested_action", deploy.ActionRollback, goodRun), "ignored: roll back from #1: no earlier successful deployment of another commit"},
		{runs, checkRun("requested_action", deploy.ActionRollback, badRun), fmt.Sprintf("roll back from #2: deploying %s (last good, #1) as #3", good[:7])},
		{runs, checkRun("requested_action", deploy.ActionRedeploy, goodRun), fmt.Sprintf("redeploy of #1: deploying %s as #4", good[:7])},
		{runs, checkRun("rerequested", "", badRun), fmt.Sprintf("re-run of #2: deploying %s as #5", bad[:7])},
		{runs, webhook.CheckRun{Action: "rerequested", CheckRunID: 998, Name: deploy.CheckValidate, HeadSHA: good, Origin: origin},
			fmt.Sprintf("validated %s: Configuration is valid", good[:7])},
		{suites, suite("requested", "main"), "ignored: check_suite requested"},
		{suites, suite("rerequested", "dev"), "ignored: push to dev, project " + p.Name + " deploys main"},
		{suites, suite("rerequested", "main"), fmt.Sprintf("re-run all: deploying %s as #6 (%s)", bad[:7], p.Name)},
		{prs, pr("closed", good), "ignored: pull_request closed"},
		{prs, pr("opened", good), fmt.Sprintf("validated %s: Configuration is valid", good[:7])},
		{prs, pr("synchronize", bad), fmt.Sprintf("validated %s: Configuration is valid", bad[:7])},
	}
	for _, s := range steps {
		got, err := s.h.Handle(e.ctx, 0, s.ev)
		if err != nil || got != s.want {
			t.Fatalf("%s %+v:\n decided %q, %v\n want    %q", s.h.Handles(), s.ev, got, err, s.want)
		}
	}
}
