package deploy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

const previewCompose = "services:\n  web:\n    image: busybox\n"

func previewYAML(maxPreviews int) string {
	return fmt.Sprintf("version: \"1.0\"\npreview:\n  domain: preview.example.com\n  services:\n    web: 8080\n  max_previews: %d\n  stop_after: 1h\n", maxPreviews)
}

// previewAgent makes an idle agent whose HELLO says it runs previews.
func (e *env) previewAgent(name string) store.Agent {
	e.t.Helper()
	a := e.idleAgent(name)
	e.orch.AgentConnected(e.ctx, a.ID, protocol.Hello{Features: []string{protocol.FeaturePreviews}})
	return a
}

// previewProject makes a project on agent with previews switched on.
func (e *env) previewProject(agent store.Agent) store.Project {
	e.t.Helper()
	p, _ := e.project(&agent)
	if err := e.st.SetProjectPreviews(e.ctx, e.user.ID, p.ID, true, nil); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.st.ProjectByID(e.ctx, p.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// openPR commits files on branch pr-<n> and sends pull_request action for it by author.
func (e *env) openPR(p store.Project, number int, action, author string, files map[string]string) (string, string) {
	e.t.Helper()
	branch := fmt.Sprintf("pr-%d", number)
	content := map[string][]byte{}
	for k, v := range files {
		content[k] = []byte(v)
	}
	content[fmt.Sprintf("change-%d.txt", time.Now().UnixNano())] = []byte("x")
	sha, err := e.sim.Commit(e.ctx, p.RepoFullName, branch, content, "change")
	if err != nil {
		e.t.Fatal(err)
	}
	// Recorded by the Sim so the App may comment on it; the test hands the event over itself.
	if _, err := e.sim.SendPullRequest(e.ctx, p.RepoFullName, action, githubsim.PullRequest{Number: number, Head: branch, Author: author}); !errors.Is(err, githubsim.ErrNoWebhookURL) {
		e.t.Fatalf("record pull request #%d: %v", number, err)
	}
	return sha, e.prEvent(p, webhook.PullRequest{Action: action, Number: number, HeadSHA: sha, HeadRef: branch, HeadRepoFullName: p.RepoFullName}, author)
}

func (e *env) prEvent(p store.Project, ev webhook.PullRequest, sender string) string {
	e.t.Helper()
	ev.Origin = webhook.Origin{Repo: webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}, InstallationID: e.instGH, SenderLogin: sender}
	got, err := deploy.NewPullRequestHandler(e.orch).Handle(e.ctx, 0, ev)
	if err != nil {
		e.t.Fatalf("pull_request %s #%d: %v", ev.Action, ev.Number, err)
	}
	return got
}

func (e *env) previewOf(p store.Project, number int) store.Preview {
	e.t.Helper()
	pv, err := e.st.PreviewByNumber(e.ctx, p.ID, number)
	if err != nil {
		e.t.Fatal(err)
	}
	return pv
}

func (e *env) latestIn(p store.Project, environment string) store.Deployment {
	e.t.Helper()
	ds, err := e.st.DeploymentsByProject(e.ctx, p.ID, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		if d.Environment == environment {
			return d
		}
	}
	e.t.Fatalf("no deployment of %s in %s", p.Name, environment)
	return store.Deployment{}
}

// finishJob plays the agent's result for d.
func (e *env) finishJob(a store.Agent, d store.Deployment, status string) {
	e.t.Helper()
	e.orch.JobAccepted(e.ctx, a.ID, jobIDOf(d))
	e.hub.setIdle(a.ID, true)
	if err := e.orch.JobResult(e.ctx, a.ID, protocol.JobResult{JobID: jobIDOf(d), Status: status}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) previewCheckRun(p store.Project, sha string) githubsim.CheckRun {
	e.t.Helper()
	var found *githubsim.CheckRun
	for _, r := range e.sim.CheckRuns(p.RepoFullName, sha) {
		if r.Name == deploy.CheckPreview {
			found = &r
		}
	}
	if found == nil {
		e.t.Fatalf("no preview check run on %s", sha[:7])
	}
	return *found
}

func (e *env) lastJob() protocol.Deploy {
	e.t.Helper()
	jobs := e.hub.jobs()
	if len(jobs) == 0 {
		e.t.Fatal("nothing dispatched")
	}
	return jobs[len(jobs)-1]
}

func TestPreview_OpenedPullRequestDeploysItsHeadWithRoutesAndPreviewSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	svc := e.opts.Secrets.(*secrets.Service)
	if _, err := svc.Put(e.ctx, p.ID, "global", "DB_PASSWORD", []byte("production-only")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutEntry(e.ctx, p.ID, secrets.Entry{Environment: "preview", Scope: "global", Key: "API_KEY", Value: []byte("preview-value")}); err != nil {
		t.Fatal(err)
	}
	sha, got := e.openPR(p, 7, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	if !strings.Contains(got, "preview of #7 queued as #") {
		t.Fatalf("decision %q", got)
	}
	job := e.lastJob()
	if job.Preview == nil || job.Preview.Number != 7 || job.Preview.Stop || job.SHA != sha {
		t.Fatalf("job %+v, want the preview of #7 at %s", job, sha[:7])
	}
	host := "web--pr-7--" + p.Name + ".preview.example.com"
	if len(job.Preview.Routes) != 1 || job.Preview.Routes[0] != (protocol.PreviewRoute{Host: host, Service: "web", Port: 8080}) {
		t.Fatalf("routes %+v, want %s -> web:8080", job.Preview.Routes, host)
	}
	if job.Project.ComposeProject != p.ComposeProject+"-pr-7" {
		t.Fatalf("compose project %q, want its own", job.Project.ComposeProject)
	}
	if len(job.Secrets) != 1 || job.Secrets[0].Key != "API_KEY" || string(job.Secrets[0].Value) != "preview-value" {
		t.Fatalf("secrets %+v, want the preview set only", job.Secrets)
	}
	d := e.latestIn(p, "preview/pr-7")
	e.finishJob(a, d, protocol.StatusSuccess)
	pv := e.previewOf(p, 7)
	if pv.State != store.PreviewLive || pv.URLMap()["web"] != "https://"+host || !pv.StopAt.Valid {
		t.Fatalf("preview %+v, want live with its URL and an idle stop time", pv)
	}
	run := e.previewCheckRun(p, sha)
	if run.Conclusion != "success" || !strings.Contains(run.Summary, "https://"+host) {
		t.Fatalf("preview check run %q\n%s", run.Conclusion, run.Summary)
	}
	comments := e.sim.IssueComments(p.RepoFullName, 7)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "https://"+host) || !strings.Contains(comments[0].Body, "live") {
		t.Fatalf("pull request comments %+v, want one naming the live URL", comments)
	}
	deps := e.sim.Deployments(p.RepoFullName)
	if len(deps) != 1 || deps[0].Environment != "preview/pr-7" {
		t.Fatalf("GitHub deployments %+v, want one of preview/pr-7", deps)
	}
	if sts := deps[0].Statuses; len(sts) == 0 || sts[len(sts)-1].EnvironmentURL != "https://"+host {
		t.Fatalf("deployment statuses %+v, want the last with environment_url %s", sts, host)
	}
	if !deps[0].TransientEnvironment || deps[0].ProductionEnvironment {
		t.Fatalf("GitHub deployment transient=%v production=%v, want a transient, non-production environment", deps[0].TransientEnvironment, deps[0].ProductionEnvironment)
	}
	// A push redeploys the preview: the earlier GitHub deployment goes inactive, and the one
	// comment is updated in place.
	next, _ := e.openPR(p, 7, "synchronize", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	e.finishJob(a, e.latestIn(p, "preview/pr-7"), protocol.StatusSuccess)
	comments = e.sim.IssueComments(p.RepoFullName, 7)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, next[:7]) {
		t.Fatalf("comments after a push %+v, want the one comment naming %s", comments, next[:7])
	}
	deps = e.sim.Deployments(p.RepoFullName)
	if len(deps) != 2 || deps[0].Statuses[len(deps[0].Statuses)-1].State != "inactive" {
		t.Fatalf("GitHub deployments after a push %+v, want two, the first inactive", deps)
	}
}

func TestPreview_NeverSupersedesOrBlocksProduction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	e.openPR(p, 7, "opened", "alice", files)
	running := e.latestIn(p, "preview/pr-7")
	if running.Status != store.DeploymentDispatched {
		t.Fatalf("preview %s, want dispatched", running.Status)
	}
	// The agent is busy with the preview: production and a second preview queue behind it.
	prodSHA := e.commit(p, "prod")
	e.push(p, prodSHA)
	e.openPR(p, 8, "opened", "alice", files)
	sha7, _ := e.openPR(p, 7, "synchronize", "alice", files)
	e.openPR(p, 7, "synchronize", "alice", files)
	prod := e.latestIn(p, store.EnvironmentProduction)
	if prod.Status != store.DeploymentQueued {
		t.Fatalf("production %s, want queued behind the agent's job", prod.Status)
	}
	if pr8 := e.latestIn(p, "preview/pr-8"); pr8.Status != store.DeploymentQueued {
		t.Fatalf("pr-8 %s after two pushes to pr-7, want still queued", pr8.Status)
	}
	if d, _ := e.st.OldestQueued(e.ctx, p.ID, "preview/pr-7"); d.SHA == sha7 {
		t.Fatal("the older push to pr-7 is still queued: a push supersedes its own preview's queued deploy")
	}
	// The preview's result frees the agent, which takes production first.
	e.finishJob(a, running, protocol.StatusSuccess)
	if job := e.lastJob(); job.Preview != nil || job.SHA != prodSHA {
		t.Fatalf("after the preview the agent got %+v, want production's %s", job.Preview, prodSHA[:7])
	}
}

func TestPreview_AgentWithoutPreviewsFailsWithUpgradeAdvice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("old")
	e.orch.AgentConnected(e.ctx, a.ID, protocol.Hello{})
	p := e.previewProject(a)
	sha, _ := e.openPR(p, 3, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	d := e.latestIn(p, "preview/pr-3")
	if d.Status != store.DeploymentFailure || !strings.Contains(d.Error, "upgrade the agent") {
		t.Fatalf("deployment %s %q, want a failure saying to upgrade the agent", d.Status, d.Error)
	}
	if run := e.previewCheckRun(p, sha); run.Conclusion != "failure" || !strings.Contains(run.Summary, "upgrade the agent") {
		t.Fatalf("check run %q\n%s", run.Conclusion, run.Summary)
	}
	if len(e.hub.jobs()) != 0 {
		t.Fatal("a preview was sent to an agent without previews")
	}
}

func TestPreview_ContainerNameFailsWithAClearCheckRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	sha, _ := e.openPR(p, 4, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3),
		"compose.yaml": "services:\n  web:\n    image: busybox\n    container_name: shop-web\n"})
	run := e.previewCheckRun(p, sha)
	if run.Conclusion != "failure" || !strings.Contains(run.Summary+run.Title, "container_name") {
		t.Fatalf("check run %q %q\n%s", run.Conclusion, run.Title, run.Summary)
	}
	if pv := e.previewOf(p, 4); pv.State != store.PreviewFailed {
		t.Fatalf("preview %s, want failed", pv.State)
	}
}

func TestPreview_LimitQueuesTheNextUntilOneStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.production(a, p, previewYAML(1))
	files := map[string]string{"stagely.yaml": previewYAML(1), "compose.yaml": previewCompose}
	e.openPR(p, 1, "opened", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusSuccess)
	e.openPR(p, 2, "opened", "alice", files)
	if pv := e.previewOf(p, 2); pv.State != store.PreviewQueued {
		t.Fatalf("second preview %s, want queued beyond max_previews 1", pv.State)
	}
	if d := e.latestIn(p, "preview/pr-2"); d.Status != store.DeploymentQueued {
		t.Fatalf("second preview's deployment %s, want queued", d.Status)
	}
	if got := e.prEvent(p, webhook.PullRequest{Action: "closed", Number: 1, HeadSHA: e.previewOf(p, 1).HeadSHA}, "alice"); !strings.Contains(got, "stopping as #") {
		t.Fatalf("close decision %q", got)
	}
	stop := e.lastJob()
	if stop.Preview == nil || !stop.Preview.Stop || stop.Preview.Number != 1 || stop.Source.Token != "" || len(stop.Secrets) != 0 {
		t.Fatalf("teardown job %+v", stop)
	}
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusSuccess)
	if pv := e.previewOf(p, 1); pv.State != store.PreviewStopped || pv.StopReason == "" {
		t.Fatalf("closed preview %s (%q), want stopped", pv.State, pv.StopReason)
	}
	if c := e.sim.IssueComments(p.RepoFullName, 1); len(c) != 1 || !strings.Contains(c[0].Body, "stopped") {
		t.Fatalf("comments of the closed pull request %+v, want one saying it stopped", c)
	}
	if job := e.lastJob(); job.Preview == nil || job.Preview.Number != 2 || job.Preview.Stop {
		t.Fatalf("after the teardown the agent got %+v, want pr-2's deploy", job.Preview)
	}
	deps := e.sim.Deployments(p.RepoFullName)
	for _, d := range deps {
		if d.Environment == "preview/pr-1" {
			if sts := d.Statuses; sts[len(sts)-1].State != "inactive" {
				t.Fatalf("pr-1's GitHub deployment ends %q, want inactive", sts[len(sts)-1].State)
			}
		}
	}
}

func TestPreview_ForkWaitsForAPermittedUsersApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.sim.AddUser("mallory")
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	sha, _ := e.openPR(p, 9, "opened", "mallory", files)
	if pv := e.previewOf(p, 9); pv.State != store.PreviewAwaitingApproval {
		t.Fatalf("outsider's preview %s, want awaiting_approval", pv.State)
	}
	if len(e.hub.jobs()) != 0 {
		t.Fatal("an outsider's pull request was deployed on its own")
	}
	run := e.previewCheckRun(p, sha)
	if run.Conclusion != "action_required" || len(run.Actions) != 1 || run.Actions[0].Identifier != deploy.ActionDeployPreview {
		t.Fatalf("check run %q with actions %+v, want action_required with Deploy preview", run.Conclusion, run.Actions)
	}
	press := func(login string) string {
		got, err := deploy.NewCheckRunHandler(e.orch).Handle(e.ctx, 0, webhook.CheckRun{
			Action: "requested_action", CheckRunID: run.ID, HeadSHA: sha, ExternalID: run.ExternalID,
			RequestedActionIdentifier: deploy.ActionDeployPreview,
			Origin:                    webhook.Origin{Repo: webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}, InstallationID: e.instGH, SenderLogin: login},
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := press("mallory"); !strings.HasPrefix(got, "refused:") || len(e.hub.jobs()) != 0 {
		t.Fatalf("a press without write access: %q, %d jobs", got, len(e.hub.jobs()))
	}
	if got := press("alice"); !strings.Contains(got, "approved by alice") {
		t.Fatalf("alice's press: %q", got)
	}
	if job := e.lastJob(); job.SHA != sha || job.Preview == nil {
		t.Fatalf("after approval the agent got %+v", job)
	}
	e.finishJob(a, e.latestIn(p, "preview/pr-9"), protocol.StatusSuccess)
	// A later push needs approval again; the approved commit keeps serving meanwhile.
	jobs := len(e.hub.jobs())
	next, _ := e.openPR(p, 9, "synchronize", "mallory", files)
	if len(e.hub.jobs()) != jobs {
		t.Fatal("a push after approval deployed without a new approval")
	}
	if pv := e.previewOf(p, 9); pv.State != store.PreviewLive || pv.HeadSHA != next {
		t.Fatalf("preview %s at %s, want still live, head recorded", pv.State, pv.HeadSHA[:7])
	}
	if run := e.previewCheckRun(p, next); run.Conclusion != "action_required" {
		t.Fatalf("the new head's check run %q, want action_required", run.Conclusion)
	}
}

func TestPreview_IdlePreviewIsStoppedBySweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.openPR(p, 5, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	e.finishJob(a, e.latestIn(p, "preview/pr-5"), protocol.StatusSuccess)
	e.sweep(e.orch)
	if pv := e.previewOf(p, 5); pv.State != store.PreviewLive {
		t.Fatalf("preview %s before its stop_after, want live", pv.State)
	}
	e.clock.Advance(61 * time.Minute)
	e.sweep(e.orch)
	if job := e.lastJob(); job.Preview == nil || !job.Preview.Stop {
		t.Fatalf("after stop_after the agent got %+v, want a teardown", job.Preview)
	}
	e.finishJob(a, e.latestIn(p, "preview/pr-5"), protocol.StatusSuccess)
	if pv := e.previewOf(p, 5); pv.State != store.PreviewStopped || !strings.Contains(pv.StopReason, "stop_after") {
		t.Fatalf("preview %s (%q), want stopped for being idle", pv.State, pv.StopReason)
	}
}

func TestPreview_ForkIsNotDeployedEvenWhenItsAuthorCanWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	fork, err := e.sim.Fork(p.RepoFullName, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sha, err := e.sim.Commit(e.ctx, fork, "feature", map[string][]byte{
		"stagely.yaml": []byte(previewYAML(3)), "compose.yaml": []byte(previewCompose)}, "change")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.SendPullRequest(e.ctx, p.RepoFullName, "opened", githubsim.PullRequest{Number: 11, Head: "feature", HeadRepo: fork, Author: "alice"}); !errors.Is(err, githubsim.ErrNoWebhookURL) {
		t.Fatal(err)
	}
	got := e.prEvent(p, webhook.PullRequest{Action: "opened", Number: 11, HeadSHA: sha, HeadRef: "feature", HeadRepoFullName: fork, AuthorLogin: "alice"}, "alice")
	if !strings.Contains(got, "awaits approval: it comes from the fork "+fork) || len(e.hub.jobs()) != 0 {
		t.Fatalf("decision %q with %d jobs, want the fork's preview waiting for approval", got, len(e.hub.jobs()))
	}
	if c := e.sim.IssueComments(p.RepoFullName, 11); len(c) != 1 || !strings.Contains(c[0].Body, "Deploy preview") {
		t.Fatalf("comments %+v, want one saying a user with write access must press Deploy preview", c)
	}
}

// stopJobs counts the teardowns of pull request number the agent was sent.
func (e *env) stopJobs(number int) int {
	n := 0
	for _, j := range e.hub.jobs() {
		if j.Preview != nil && j.Preview.Stop && j.Preview.Number == number {
			n++
		}
	}
	return n
}

func TestPreview_PushAfterAnIdleStopKeepsTheQueuedTeardown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.openPR(p, 5, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	e.finishJob(a, e.latestIn(p, "preview/pr-5"), protocol.StatusSuccess)
	e.hub.setIdle(a.ID, false) // the teardown stays queued while the agent is busy
	e.clock.Advance(61 * time.Minute)
	e.sweep(e.orch)
	if pv := e.previewOf(p, 5); pv.State != store.PreviewStopping {
		t.Fatalf("preview %s after stop_after, want stopping", pv.State)
	}
	// A push whose deploy fails before it claims a slot: its stagely.yaml is broken.
	e.openPR(p, 5, "synchronize", "alice", map[string]string{"stagely.yaml": "version: [", "compose.yaml": previewCompose})
	e.hub.setIdle(a.ID, true)
	e.orch.AgentIdle(e.ctx, a.ID)
	if e.stopJobs(5) != 1 {
		t.Fatalf("the agent got %d teardowns of pr-5, want the queued one", e.stopJobs(5))
	}
	e.finishJob(a, e.teardownOf(p, 5), protocol.StatusSuccess)
	if d := e.latestIn(p, "preview/pr-5"); d.Trigger != store.TriggerPreview || d.Status != store.DeploymentFailure {
		t.Fatalf("the push's deploy %s %s, want a preview failing on its stagely.yaml", d.Trigger, d.Status)
	}
	if pv := e.previewOf(p, 5); pv.State != store.PreviewStopped {
		t.Fatalf("preview %s (%q), want stopped by its teardown", pv.State, pv.StopReason)
	}
}

// teardownOf is the latest teardown of pull request number's preview.
func (e *env) teardownOf(p store.Project, number int) store.Deployment {
	e.t.Helper()
	ds, err := e.st.DeploymentsByProject(e.ctx, p.ID, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		if d.Environment == store.PreviewEnvironment(number) && d.Trigger == store.TriggerPreviewStop {
			return d
		}
	}
	e.t.Fatalf("no teardown of pr-%d", number)
	return store.Deployment{}
}

// approve presses Deploy preview, as login, on the approval check run of sha.
func (e *env) approve(p store.Project, sha, login string) string {
	e.t.Helper()
	run := e.previewCheckRun(p, sha)
	got, err := deploy.NewCheckRunHandler(e.orch).Handle(e.ctx, 0, webhook.CheckRun{
		Action: "requested_action", CheckRunID: run.ID, HeadSHA: sha, ExternalID: run.ExternalID,
		RequestedActionIdentifier: deploy.ActionDeployPreview,
		Origin:                    webhook.Origin{Repo: webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}, InstallationID: e.instGH, SenderLogin: login},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func TestPreview_OutsidersPushWhileStoppingKeepsTheTeardown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.sim.AddUser("mallory")
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	sha, _ := e.openPR(p, 9, "opened", "mallory", files)
	if got := e.approve(p, sha, "alice"); !strings.Contains(got, "approved by alice") {
		t.Fatalf("alice's press: %q", got)
	}
	e.finishJob(a, e.latestIn(p, "preview/pr-9"), protocol.StatusSuccess)
	e.hub.setIdle(a.ID, false)
	e.clock.Advance(61 * time.Minute)
	e.sweep(e.orch)
	e.openPR(p, 9, "synchronize", "mallory", files)
	if pv := e.previewOf(p, 9); pv.State != store.PreviewStopping {
		t.Fatalf("preview %s after an outsider's push, want still stopping: its containers run", pv.State)
	}
	if d := e.teardownOf(p, 9); d.Status != store.DeploymentQueued {
		t.Fatalf("teardown %s after an outsider's push, want still queued", d.Status)
	}
	e.hub.setIdle(a.ID, true)
	e.orch.AgentIdle(e.ctx, a.ID)
	e.finishJob(a, e.teardownOf(p, 9), protocol.StatusSuccess)
	if pv := e.previewOf(p, 9); pv.State != store.PreviewStopped {
		t.Fatalf("preview %s after its teardown, want stopped", pv.State)
	}
}

func TestPreview_OutsidersPushCompletesTheCheckRunOfTheCancelledDeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.sim.AddUser("mallory")
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	sha, _ := e.openPR(p, 9, "opened", "mallory", files)
	e.hub.setIdle(a.ID, false) // the approved deploy stays queued
	if got := e.approve(p, sha, "alice"); !strings.Contains(got, "approved by alice") {
		t.Fatalf("alice's press: %q", got)
	}
	queued := e.latestIn(p, "preview/pr-9")
	e.openPR(p, 9, "synchronize", "mallory", files)
	if d, err := e.st.DeploymentByID(e.ctx, queued.ID); err != nil || d.Status != store.DeploymentCancelled {
		t.Fatalf("approved deploy %s (%v), want cancelled by the unapproved push", d.Status, err)
	}
	for _, r := range e.sim.CheckRuns(p.RepoFullName, sha) {
		if r.Status != "completed" {
			t.Fatalf("check run %q on the cancelled commit is %s, want completed", r.Name, r.Status)
		}
	}
}

func TestPreview_FailedFirstDeployHoldsNoSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.production(a, p, previewYAML(1))
	files := map[string]string{"stagely.yaml": previewYAML(1), "compose.yaml": previewCompose}
	e.openPR(p, 1, "opened", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusFailure)
	if pv := e.previewOf(p, 1); pv.State != store.PreviewFailed {
		t.Fatalf("first preview %s, want failed", pv.State)
	}
	e.openPR(p, 2, "opened", "alice", files)
	if pv := e.previewOf(p, 2); pv.State != store.PreviewDeploying {
		t.Fatalf("second preview %s, want deploying: pr-1 never ran", pv.State)
	}
}

func TestPreview_FailedRedeployOfALivePreviewHoldsItsSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.production(a, p, previewYAML(1))
	files := map[string]string{"stagely.yaml": previewYAML(1), "compose.yaml": previewCompose}
	e.openPR(p, 1, "opened", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusSuccess)
	e.openPR(p, 1, "synchronize", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusFailure)
	e.openPR(p, 2, "opened", "alice", files)
	if pv := e.previewOf(p, 2); pv.State != store.PreviewQueued {
		t.Fatalf("second preview %s, want queued: pr-1's earlier deploy still runs", pv.State)
	}
}

func TestPreview_StaleEventsAreIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	first, _ := e.openPR(p, 4, "opened", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-4"), protocol.StatusSuccess)
	second, _ := e.openPR(p, 4, "synchronize", "alice", files)
	e.finishJob(a, e.latestIn(p, "preview/pr-4"), protocol.StatusSuccess)
	jobs := len(e.hub.jobs())
	stale := webhook.PullRequest{Action: "synchronize", Number: 4, HeadSHA: first, HeadRef: "pr-4", HeadRepoFullName: p.RepoFullName}
	if got := e.prEvent(p, stale, "alice"); !strings.Contains(got, "ignored: pull request #4's head is "+second[:7]) {
		t.Fatalf("decision on a stale synchronize %q", got)
	}
	if pv := e.previewOf(p, 4); pv.HeadSHA != second || len(e.hub.jobs()) != jobs {
		t.Fatalf("after a stale synchronize the head is %s with %d new jobs, want %s and none", pv.HeadSHA[:7], len(e.hub.jobs())-jobs, second[:7])
	}
	// Closed on GitHub, then its `opened` redelivered.
	if _, err := e.sim.SendPullRequest(e.ctx, p.RepoFullName, "closed", githubsim.PullRequest{Number: 4, Head: "pr-4", Author: "alice"}); !errors.Is(err, githubsim.ErrNoWebhookURL) {
		t.Fatal(err)
	}
	e.prEvent(p, webhook.PullRequest{Action: "closed", Number: 4, HeadSHA: second}, "alice")
	e.finishJob(a, e.teardownOf(p, 4), protocol.StatusSuccess)
	stale = webhook.PullRequest{Action: "opened", Number: 4, HeadSHA: second, HeadRef: "pr-4", HeadRepoFullName: p.RepoFullName}
	if got := e.prEvent(p, stale, "alice"); !strings.Contains(got, "ignored: pull request #4 is closed") {
		t.Fatalf("decision on an opened after closed %q", got)
	}
	if pv := e.previewOf(p, 4); pv.State != store.PreviewStopped {
		t.Fatalf("closed pull request's preview %s after a stale opened, want stopped", pv.State)
	}
}

// production deploys stagely (with the preview compose file) on the deploy branch.
func (e *env) production(a store.Agent, p store.Project, stagely string) {
	e.t.Helper()
	sha := e.commitFiles(p, map[string][]byte{"stagely.yaml": []byte(stagely), "compose.yaml": []byte(previewCompose)})
	e.deploy(a, p, sha, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	if d := e.latest(p); d.Status != store.DeploymentSuccess || d.SHA != sha {
		e.t.Fatalf("production %s at %s, want success", d.Status, d.SHA[:7])
	}
}

func TestPreview_LimitComesFromTheDeployBranchNotThePullRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.production(a, p, previewYAML(1))
	raised := map[string]string{"stagely.yaml": previewYAML(5), "compose.yaml": previewCompose}
	e.openPR(p, 1, "opened", "alice", raised)
	e.finishJob(a, e.latestIn(p, "preview/pr-1"), protocol.StatusSuccess)
	e.openPR(p, 2, "opened", "alice", raised)
	if pv := e.previewOf(p, 2); pv.State != store.PreviewQueued {
		t.Fatalf("second preview %s, want queued: the deploy branch allows 1, whatever the pull request says", pv.State)
	}
}

func TestPreview_HostNameClashesAreRefusedOnTheCheckRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	named := func(name string) store.Project {
		p := e.previewProject(a)
		if _, err := e.st.DB().Exec(`UPDATE projects SET name = $2 WHERE id = $1`, p.ID, name); err != nil {
			t.Fatal(err)
		}
		p, err := e.st.ProjectByID(e.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose}
	first, second := named("my_shop"), named("my-shop")
	e.openPR(first, 1, "opened", "alice", files)
	e.finishJob(a, e.latestIn(first, "preview/pr-1"), protocol.StatusSuccess)
	sha, _ := e.openPR(second, 1, "opened", "alice", files)
	if d := e.latestIn(second, "preview/pr-1"); d.Status != store.DeploymentFailure {
		t.Fatalf("the clashing preview's deployment %s, want failure", d.Status)
	}
	if run := e.previewCheckRun(second, sha); !strings.Contains(run.Summary+run.Text, "another project on this agent") {
		t.Fatalf("check run %q / %q, want it to name the clash", run.Summary, run.Text)
	}

	two := map[string]string{
		"stagely.yaml": "version: \"1.0\"\npreview:\n  domain: preview.example.com\n  services:\n    web_1: 8080\n    web-1: 8080\n",
		"compose.yaml": "services:\n  web_1:\n    image: busybox\n  web-1:\n    image: busybox\n",
	}
	sha, _ = e.openPR(first, 2, "opened", "alice", two)
	if run := e.previewCheckRun(first, sha); run.Conclusion != "failure" || !strings.Contains(run.Summary+run.Text, "both get the host") {
		t.Fatalf("check run %s %q / %q, want a failure naming both services", run.Conclusion, run.Summary, run.Text)
	}
}

// A teardown that failed is tried again by the sweep after a short wait that doubles with
// each failure, not only when stop_after has passed days later: the containers of a closed
// pull request run until it succeeds.
func TestPreview_FailedTeardownIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.previewAgent("box")
	p := e.previewProject(a)
	e.openPR(p, 7, "opened", "alice", map[string]string{"stagely.yaml": previewYAML(3), "compose.yaml": previewCompose})
	e.finishJob(a, e.latestIn(p, "preview/pr-7"), protocol.StatusSuccess)
	e.prEvent(p, webhook.PullRequest{Action: "closed", Number: 7, HeadSHA: e.previewOf(p, 7).HeadSHA}, "alice")
	e.finishJob(a, e.teardownOf(p, 7), protocol.StatusFailure)
	if pv := e.previewOf(p, 7); pv.State != store.PreviewFailed {
		t.Fatalf("preview %s after its teardown failed, want failed", pv.State)
	}
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		e.clock.Advance(wait - time.Second)
		e.sweep(e.orch)
		if got := e.stopJobs(7); got != i+1 {
			t.Fatalf("teardowns of pr-7 before the retry is due: %d, want %d", got, i+1)
		}
		e.clock.Advance(2 * time.Second)
		e.sweep(e.orch)
		e.orch.AgentIdle(e.ctx, a.ID)
		if got := e.stopJobs(7); got != i+2 {
			t.Fatalf("teardowns of pr-7 once the retry is due: %d, want %d", got, i+2)
		}
		if pv := e.previewOf(p, 7); !strings.Contains(pv.StopReason, "closed") {
			t.Fatalf("the retry says %q, want the pull request's closing as its reason", pv.StopReason)
		}
		e.finishJob(a, e.teardownOf(p, 7), protocol.StatusFailure)
	}
}
