package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

func depIDs(ds []store.Deployment) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestSweeperQueries_FindWaitingLostAndOverdueDeployments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	online := f.newAgent(f.user.ID, "online")
	offline := f.newAgent(f.user.ID, "offline")
	if err := f.st.MarkAgentConnected(f.ctx, online.ID, store.AgentHello{}, now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkAgentConnected(f.ctx, offline.ID, store.AgentHello{}, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetAgentStatus(f.ctx, offline.ID, store.AgentOffline); err != nil {
		t.Fatal(err)
	}
	pOn, pOff, pNone := f.newProject("on", 1, "main"), f.newProject("off", 2, "main"), f.newProject("none", 3, "main")
	_ = f.st.SetProjectAgent(f.ctx, f.user.ID, pOn.ID, &online.ID)
	_ = f.st.SetProjectAgent(f.ctx, f.user.ID, pOff.ID, &offline.ID)
	if got, _ := f.st.ProjectsByAgent(f.ctx, offline.ID); len(got) != 1 || got[0].ID != pOff.ID {
		t.Fatalf("ProjectsByAgent = %v", got)
	}

	qOn, qOff, qNone := f.newDeployment(pOn.ID, 1), f.newDeployment(pOff.ID, 2), f.newDeployment(pNone.ID, 3)
	// The cutoffs are taken from the deployments' own creation times, which the database
	// stamps: however slowly the test runs, the first is after all three, the second before.
	stale, err := f.st.StaleQueued(f.ctx, qNone.CreatedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := depIDs(stale); len(got) != 2 || got[0] != qOff.ID || got[1] != qNone.ID {
		t.Fatalf("StaleQueued = %v, want the offline and agentless ones %d %d (not %d)", got, qOff.ID, qNone.ID, qOn.ID)
	}
	if stale, _ := f.st.StaleQueued(f.ctx, qOn.CreatedAt.Add(-time.Minute)); len(stale) != 0 {
		t.Fatalf("deployments younger than the cutoff counted as stale: %v", depIDs(stale))
	}
	waiting, _ := f.st.ProjectsWithQueued(f.ctx)
	if len(waiting) != 3 {
		t.Fatalf("ProjectsWithQueued = %v", waiting)
	}

	// Dispatch the online project's and the offline one's deployments.
	_ = f.st.MarkDispatched(f.ctx, qOn.ID, online.ID, now.Add(-2*time.Hour))
	_ = f.st.MarkDispatched(f.ctx, qOff.ID, offline.ID, now)
	lost, err := f.st.LostDeployments(f.ctx, now.Add(-time.Minute))
	if err != nil || len(lost) != 1 || lost[0].ID != qOff.ID {
		t.Fatalf("LostDeployments = %v, %v; want %d", depIDs(lost), err, qOff.ID)
	}
	overdue, err := f.st.OverdueDeployments(f.ctx, now.Add(-time.Hour))
	if err != nil || len(overdue) != 1 || overdue[0].ID != qOn.ID {
		t.Fatalf("OverdueDeployments = %v, %v", depIDs(overdue), err)
	}
	if waiting, _ := f.st.ProjectsWithQueued(f.ctx); len(waiting) != 1 || waiting[0] != pNone.ID {
		t.Fatalf("ProjectsWithQueued after dispatch = %v, want only %d", waiting, pNone.ID)
	}

	if err := f.st.Requeue(f.ctx, qOn.ID); err != nil {
		t.Fatal(err)
	}
	back, _ := f.st.DeploymentByID(f.ctx, qOn.ID)
	if back.Status != store.DeploymentQueued || back.AgentID.Valid || back.DispatchedAt.Valid {
		t.Fatalf("after Requeue: %+v", back)
	}
	if err := f.st.Requeue(f.ctx, qOn.ID); err == nil {
		t.Fatal("a queued deployment was requeued again")
	}
}

func TestDeployments_ConfigAndReportState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 1, "main")
	now := time.Now()
	a := f.newDeployment(p.ID, 1)
	if err := f.st.SetDeploymentConfig(f.ctx, a.ID, json.RawMessage(`{"strategy":"recreate"}`)); err != nil {
		t.Fatal(err)
	}
	_ = f.st.FinishDeployment(f.ctx, a.ID, store.DeploymentSuccess, "", nil, now)
	b := f.newDeployment(p.ID, 2)
	_ = f.st.FinishDeployment(f.ctx, b.ID, store.DeploymentFailure, "x", nil, now)
	// Their first reports are under way: nothing to claim until they have had time to finish.
	if got, err := f.st.ClaimReports(f.ctx, now, now.Add(-time.Minute), now.Add(time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("ClaimReports while the first reports run = %v, %v", depIDs(got), err)
	}
	later := now.Add(time.Minute)
	claimed, err := f.st.ClaimReports(f.ctx, later, later, later.Add(5*time.Minute), 10)
	if err != nil || len(claimed) != 2 || claimed[0].ReportAttempts != 1 || claimed[0].NextReportAt.Time.Sub(later.Add(5*time.Minute)).Abs() > time.Millisecond {
		t.Fatalf("ClaimReports once settled = %+v, %v", claimed, err)
	}
	if got, _ := f.st.ClaimReports(f.ctx, later, later, later.Add(5*time.Minute), 10); len(got) != 0 {
		t.Fatalf("claimed again while held: %v", depIDs(got))
	}
	if err := f.st.SetReportedStatus(f.ctx, a.ID, store.DeploymentSuccess); err != nil {
		t.Fatal(err)
	}
	if err := f.st.ScheduleReport(f.ctx, b.ID, later.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.ClaimReports(f.ctx, later.Add(time.Minute), later, later.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("claimed before its retry is due: %v", depIDs(got))
	}
	if got, _ := f.st.ClaimReports(f.ctx, later.Add(2*time.Minute), later, later.Add(time.Hour), 10); len(got) != 1 || got[0].ID != b.ID || got[0].ReportAttempts != 2 {
		t.Fatalf("after reporting #%d and scheduling #%d: %+v", a.ID, b.ID, got)
	}
	if n, err := f.st.CountReportAttempt(f.ctx, b.ID); err != nil || n != 3 {
		t.Fatalf("CountReportAttempt = %d, %v; want 3", n, err)
	}
	got, _ := f.st.DeploymentByID(f.ctx, a.ID)
	var cfg map[string]string
	if err := json.Unmarshal(got.Config, &cfg); err != nil || cfg["strategy"] != "recreate" {
		t.Fatalf("config round trip: %s, %v", got.Config, err)
	}

	// PreviousGood skips failures and the same SHA.
	c := f.newDeployment(p.ID, 1) // same SHA as a
	_ = f.st.FinishDeployment(f.ctx, c.ID, store.DeploymentSuccess, "", nil, now)
	d := f.newDeployment(p.ID, 3)
	prev, err := f.st.PreviousGood(f.ctx, p.ID, d.ID, sha(3))
	if err != nil || prev.ID != c.ID {
		t.Fatalf("PreviousGood = %d, %v; want %d", prev.ID, err, c.ID)
	}
	if _, err := f.st.PreviousGood(f.ctx, p.ID, d.ID, sha(1)); !store.IsNotFound(err) {
		t.Fatalf("PreviousGood excluding the only good SHA = %v", err)
	}
}

func TestDeployments_CreatedOnTheCallersClockOrElseTheDatabases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 500, "main")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(1), Ref: "refs/heads/main", Trigger: store.TriggerPush, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if !d.CreatedAt.Equal(at) {
		t.Fatalf("created at %v, want the caller's %v", d.CreatedAt, at)
	}
	before := time.Now().Add(-time.Minute)
	if d := f.newDeployment(p.ID, 2); d.CreatedAt.Before(before) || d.CreatedAt.After(at) {
		t.Fatalf("created at %v without a time, want the database's now", d.CreatedAt)
	}
}

func TestHasDeploymentOf_LooksAtTheProjectsOwnDeploymentsOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	web, api := f.newProject("web", 1, "main"), f.newProject("api", 2, "main")
	f.newDeployment(web.ID, 1)
	for _, c := range []struct {
		project int64
		n       int
		want    bool
	}{{web.ID, 1, true}, {web.ID, 2, false}, {api.ID, 1, false}} {
		if got, err := f.st.HasDeploymentOf(f.ctx, c.project, sha(c.n)); err != nil || got != c.want {
			t.Errorf("HasDeploymentOf(project %d, sha %d) = %v, %v; want %v", c.project, c.n, got, err, c.want)
		}
	}
}
