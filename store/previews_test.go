package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

func (f *fixture) newPreviewDeployment(projectID int64, pr, n int, trigger string) store.Deployment {
	f.t.Helper()
	d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: projectID, SHA: sha(n), Ref: "refs/pull/1/head",
		Trigger: trigger, Environment: store.PreviewEnvironment(pr)})
	if err != nil {
		f.t.Fatalf("create preview deployment: %v", err)
	}
	return d
}

func (f *fixture) newPreview(projectID int64, pr int, state string) store.Preview {
	f.t.Helper()
	pv, err := f.st.RecordPreviewHead(f.ctx, store.PreviewHead{ProjectID: projectID, PRNumber: pr, HeadSHA: sha(pr)}, state)
	if err != nil {
		f.t.Fatalf("record preview: %v", err)
	}
	return pv
}

func TestDeployments_PreviewsAndProductionNeverSupersedeOrBlockEachOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 300, "main")
	a := f.newAgent(f.user.ID, "box")
	prod := f.newDeployment(p.ID, 1)
	pr7 := f.newPreviewDeployment(p.ID, 7, 2, store.TriggerPreview)
	pr8 := f.newPreviewDeployment(p.ID, 8, 3, store.TriggerPreview)
	// A preview running does not make production (or another preview) wait on the database.
	if err := f.st.MarkDispatched(f.ctx, pr7.ID, a.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	envs, err := f.st.QueuedEnvironments(f.ctx, p.ID)
	if err != nil || !slices.Equal(envs, []string{"production", "preview/pr-8"}) {
		t.Fatalf("QueuedEnvironments = %v, %v; want production first, then pr-8 (pr-7 is running)", envs, err)
	}
	if err := f.st.MarkDispatched(f.ctx, prod.ID, a.ID, time.Now()); err != nil {
		t.Fatalf("production dispatched beside a running preview: %v", err)
	}
	newer := f.newPreviewDeployment(p.ID, 7, 4, store.TriggerPreview)
	prod2 := f.newDeployment(p.ID, 5)
	got, err := f.st.SupersedeQueued(f.ctx, newer, time.Now())
	if err != nil || len(got) != 0 {
		t.Fatalf("a push to pr-7 superseded %v (%v); want nothing: pr-8 and production are other environments", depIDs(got), err)
	}
	got, err = f.st.SupersedeQueued(f.ctx, prod2, time.Now())
	if err != nil || len(got) != 0 {
		t.Fatalf("a production push superseded %v (%v); want none of the previews", depIDs(got), err)
	}
	if q, err := f.st.OldestQueued(f.ctx, p.ID, "preview/pr-8"); err != nil || q.ID != pr8.ID {
		t.Fatalf("OldestQueued(pr-8) = %d, %v; want %d", q.ID, err, pr8.ID)
	}
	waiting, err := f.st.ProjectsWithQueued(f.ctx)
	if err != nil || !slices.Contains(waiting, p.ID) {
		t.Fatalf("ProjectsWithQueued = %v, %v; the project's pr-8 waits on no active deployment of its own", waiting, err)
	}
}

func TestDeployments_PreviewCommitsDoNotCountAsProductionDeployments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 301, "main")
	f.newPreviewDeployment(p.ID, 7, 1, store.TriggerPreview)
	if ok, err := f.st.HasDeploymentOf(f.ctx, p.ID, sha(1)); err != nil || ok {
		t.Fatalf("HasDeploymentOf a previewed commit = %v, %v; want false: the stale-push check is about the deploy branch", ok, err)
	}
}

func TestDeployments_LastSuccessfulIsPerEnvironmentAndForgetsAStoppedPreview(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 302, "main")
	now := time.Now()
	prod := f.newDeployment(p.ID, 1)
	_ = f.st.FinishDeployment(f.ctx, prod.ID, store.DeploymentSuccess, "", nil, now)
	pv := f.newPreviewDeployment(p.ID, 7, 2, store.TriggerPreview)
	_ = f.st.FinishDeployment(f.ctx, pv.ID, store.DeploymentSuccess, "", nil, now)
	if got, err := f.st.LastSuccessful(f.ctx, p.ID, "preview/pr-7", 0); err != nil || got.ID != pv.ID {
		t.Fatalf("LastSuccessful(pr-7) = %d, %v; want %d", got.ID, err, pv.ID)
	}
	if got, err := f.st.LastSuccessful(f.ctx, p.ID, store.EnvironmentProduction, 0); err != nil || got.ID != prod.ID {
		t.Fatalf("LastSuccessful(production) = %d, %v; want %d", got.ID, err, prod.ID)
	}
	stop := f.newPreviewDeployment(p.ID, 7, 2, store.TriggerPreviewStop)
	_ = f.st.FinishDeployment(f.ctx, stop.ID, store.DeploymentSuccess, "", nil, now)
	if got, err := f.st.LastSuccessful(f.ctx, p.ID, "preview/pr-7", 0); !store.IsNotFound(err) {
		t.Fatalf("LastSuccessful after the preview stopped = %d, %v; want none: a reopened preview starts afresh", got.ID, err)
	}
	if _, err := f.st.PreviousGood(f.ctx, p.ID, pv.ID+10, sha(9)); err != nil {
		t.Fatalf("PreviousGood = %v", err)
	}
	if got, _ := f.st.PreviousGood(f.ctx, p.ID, pv.ID+10, sha(9)); got.Environment != store.EnvironmentProduction {
		t.Fatalf("PreviousGood went to %s, want production only", got.Environment)
	}
}

func TestPreviews_ClaimSlotQueuesBeyondTheLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 303, "main")
	a := f.newAgent(f.user.ID, "box")
	first, second := f.newPreview(p.ID, 1, store.PreviewQueued), f.newPreview(p.ID, 2, store.PreviewQueued)
	if ok, err := f.st.ClaimPreviewSlot(f.ctx, first.ID, a.ID, 1); err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	if ok, err := f.st.ClaimPreviewSlot(f.ctx, second.ID, a.ID, 1); err != nil || ok {
		t.Fatalf("second claim beyond a limit of 1 = %v, %v; want false", ok, err)
	}
	if ok, err := f.st.ClaimPreviewSlot(f.ctx, first.ID, a.ID, 1); err != nil || !ok {
		t.Fatalf("the holder's own redeploy = %v, %v; want its slot", ok, err)
	}
	if got, _ := f.st.PreviewByNumber(f.ctx, p.ID, 2); got.State != store.PreviewQueued {
		t.Fatalf("second preview %s, want queued", got.State)
	}
	if err := f.st.SetPreviewState(f.ctx, first.ID, store.PreviewStopped, "closed"); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ClaimPreviewSlot(f.ctx, second.ID, a.ID, 1); err != nil || !ok {
		t.Fatalf("claim after the first stopped = %v, %v", ok, err)
	}
	got, _ := f.st.PreviewByNumber(f.ctx, p.ID, 2)
	if got.State != store.PreviewDeploying || got.AgentID.Int64 != a.ID {
		t.Fatalf("second preview %s on %v, want deploying on %d", got.State, got.AgentID, a.ID)
	}
}

func TestPreviews_StaleQueuedAndWaitingUseThePreviewAgent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 304, "main")
	prodAgent, previewAgent := f.newAgent(f.user.ID, "prod"), f.newAgent(f.user.ID, "previews")
	_ = f.st.SetProjectAgent(f.ctx, f.user.ID, p.ID, &prodAgent.ID)
	if _, err := f.st.DB().ExecContext(f.ctx, `UPDATE projects SET previews_enabled = true, preview_agent_id = $2 WHERE id = $1`, p.ID, previewAgent.ID); err != nil {
		t.Fatal(err)
	}
	f.newPreview(p.ID, 7, store.PreviewQueued)
	d := f.newPreviewDeployment(p.ID, 7, 1, store.TriggerPreview)
	if ids, err := f.st.ProjectsWaitingOnAgent(f.ctx, previewAgent.ID); err != nil || !slices.Equal(ids, []int64{p.ID}) {
		t.Fatalf("ProjectsWaitingOnAgent(preview agent) = %v, %v", ids, err)
	}
	if ids, _ := f.st.ProjectsWaitingOnAgent(f.ctx, prodAgent.ID); len(ids) != 0 {
		t.Fatalf("a preview waits on the production agent: %v", ids)
	}
	// Both agents have never connected (offline): the preview is stale on its own agent's account.
	stale, err := f.st.StaleQueued(f.ctx, d.CreatedAt.Add(time.Minute))
	if err != nil || len(stale) != 1 || stale[0].ID != d.ID {
		t.Fatalf("StaleQueued = %v, %v", depIDs(stale), err)
	}
	if err := f.st.MarkAgentConnected(f.ctx, previewAgent.ID, store.AgentHello{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if stale, _ := f.st.StaleQueued(f.ctx, d.CreatedAt.Add(time.Minute)); len(stale) != 0 {
		t.Fatalf("a preview whose agent is online counted stale: %v", depIDs(stale))
	}
}

func TestPreviews_ToStopAreTheIdleRunningOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 305, "main")
	now := time.Now()
	idle, fresh, stopped := f.newPreview(p.ID, 1, store.PreviewLive), f.newPreview(p.ID, 2, store.PreviewLive), f.newPreview(p.ID, 3, store.PreviewStopped)
	for _, c := range []struct {
		pv     store.Preview
		stopAt time.Time
	}{{idle, now.Add(-time.Minute)}, {fresh, now.Add(time.Hour)}, {stopped, now.Add(-time.Hour)}} {
		if err := f.st.SetPreviewDeployed(f.ctx, c.pv.ID, map[string]string{"web": "https://x"}, now, c.stopAt); err != nil {
			t.Fatal(err)
		}
	}
	due, err := f.st.PreviewsToStop(f.ctx, now)
	if err != nil || len(due) != 1 || due[0].ID != idle.ID {
		t.Fatalf("PreviewsToStop = %v, %v; want only %d", due, err, idle.ID)
	}
	if urls := due[0].URLMap(); urls["web"] != "https://x" {
		t.Fatalf("URLs = %v", urls)
	}
}
