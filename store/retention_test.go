package store_test

import (
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

func TestPruneDeliveries_DeletesOnlySettledOnesOlderThanTheCutoff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
	finish := map[string]time.Time{"old-1": old, "old-2": old, "old-3": old, "recent": recent}
	for _, id := range []string{"old-1", "old-2", "old-3", "recent", "pending"} {
		if _, _, err := f.st.RecordDelivery(f.ctx, store.NewDelivery{DeliveryID: id, Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := f.st.ClaimDeliveries(f.ctx, 4, time.Minute, now)
	if err != nil || len(claimed) != 4 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	for _, d := range claimed {
		if err := f.st.FinishDelivery(f.ctx, d.ID, store.DeliveryDone, "ignored: test", finish[d.DeliveryID]); err != nil {
			t.Fatal(err)
		}
	}
	// A deployment started by an old delivery outlives it.
	p := f.newProject("web", 9, "main")
	old1, _ := f.st.DeliveryByDeliveryID(f.ctx, "old-1")
	dep, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(1), Ref: "refs/heads/main", Trigger: store.TriggerPush, DeliveryID: &old1.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The pending delivery was received long ago too; it is not settled, so it stays.
	if _, err := f.st.DB().Exec(`UPDATE webhook_deliveries SET received_at = $1 WHERE delivery_id = 'pending'`, old); err != nil {
		t.Fatal(err)
	}

	var total int64
	for {
		// Batches of two: the pruner deletes in small transactions.
		n, err := f.st.PruneDeliveries(f.ctx, now.Add(-30*24*time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 3 {
		t.Fatalf("pruned %d deliveries, want the 3 settled more than 30 days ago", total)
	}
	for _, id := range []string{"recent", "pending"} {
		if _, err := f.st.DeliveryByDeliveryID(f.ctx, id); err != nil {
			t.Errorf("%s was pruned: %v", id, err)
		}
	}
	if d, err := f.st.DeploymentByID(f.ctx, dep.ID); err != nil || d.DeliveryID.Valid {
		t.Fatalf("the deployment of a pruned delivery: %+v, %v", d, err)
	}
}

func TestPruneDeploymentLogs_KeepsRecentLogsAndEachProjectsLastDeployments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-24*time.Hour)
	agent := f.newAgent(f.user.ID, "box")
	n := 0
	// deploy makes a deployment with two log lines that finished at finishedAt (or is still
	// running when finishedAt is zero) and whose outcome GitHub was told when reported.
	deploy := func(projectID int64, finishedAt time.Time, reported bool) int64 {
		t.Helper()
		n++
		d := f.newDeployment(projectID, n)
		if err := f.st.MarkDispatched(f.ctx, d.ID, agent.ID, now); err != nil {
			t.Fatal(err)
		}
		lines := []store.LogLine{{Seq: 1, Stream: "stdout", Line: "pulling", TS: now}, {Seq: 2, Stream: "stdout", Line: "up", TS: now}}
		if err := f.st.AppendAgentLogs(f.ctx, d.ID, agent.ID, lines); err != nil {
			t.Fatal(err)
		}
		if finishedAt.IsZero() {
			return d.ID
		}
		if err := f.st.FinishDeployment(f.ctx, d.ID, store.DeploymentSuccess, "", nil, finishedAt); err != nil {
			t.Fatal(err)
		}
		if reported {
			if err := f.st.SetReportedStatus(f.ctx, d.ID, store.DeploymentSuccess); err != nil {
				t.Fatal(err)
			}
		}
		return d.ID
	}
	a, b := f.newProject("a", 1, "main"), f.newProject("b", 2, "main")
	var aOld []int64
	for range 5 {
		aOld = append(aOld, deploy(a.ID, old, true))
	}
	aUnreported := deploy(a.ID, old, false)
	aRecent := deploy(a.ID, recent, true)
	aRunning := deploy(a.ID, time.Time{}, false)
	bOnly := deploy(b.ID, old, true)

	keepLast := 2
	var deployments, lines int64
	for {
		d, l, err := f.st.PruneDeploymentLogs(f.ctx, now.Add(-90*24*time.Hour), keepLast, 2)
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			break
		}
		deployments, lines = deployments+d, lines+l
	}
	// a's last two are aRunning and aRecent; of its older ones, all that GitHub was told about
	// lose their logs. b's only deployment is among its last two.
	pruned := map[int64]bool{}
	for _, id := range aOld {
		pruned[id] = true
	}
	if deployments != 5 || lines != 10 {
		t.Fatalf("pruned the logs of %d deployments (%d lines), want 5 (10)", deployments, lines)
	}
	for _, id := range append(aOld, aUnreported, aRecent, aRunning, bOnly) {
		got, err := f.st.Logs(f.ctx, id, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if kept := len(got) == 2; kept == pruned[id] {
			t.Errorf("deployment %d: %d lines left, pruned=%v", id, len(got), pruned[id])
		}
		if _, err := f.st.DeploymentByID(f.ctx, id); err != nil {
			t.Errorf("deployment %d itself was deleted: %v", id, err)
		}
	}
}

func TestPruneDeploymentLogs_PreviewsDoNotPushProductionsLastDeploymentsOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	old := now.Add(-100 * 24 * time.Hour)
	agent := f.newAgent(f.user.ID, "box")
	p := f.newProject("a", 1, "main")
	deploy := func(n int, environment, trigger string) int64 {
		t.Helper()
		d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(n), Ref: "refs/heads/main", Trigger: trigger, Environment: environment})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.MarkDispatched(f.ctx, d.ID, agent.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := f.st.AppendAgentLogs(f.ctx, d.ID, agent.ID, []store.LogLine{{Seq: 1, Stream: "stdout", Line: "up", TS: now}}); err != nil {
			t.Fatal(err)
		}
		if err := f.st.FinishDeployment(f.ctx, d.ID, store.DeploymentSuccess, "", nil, old); err != nil {
			t.Fatal(err)
		}
		if err := f.st.SetReportedStatus(f.ctx, d.ID, store.DeploymentSuccess); err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	prodOld := deploy(1, store.EnvironmentProduction, store.TriggerPush)
	prodLast := deploy(2, store.EnvironmentProduction, store.TriggerPush)
	previewOld := deploy(3, store.PreviewEnvironment(7), store.TriggerPreview)
	previewLast := deploy(4, store.PreviewEnvironment(7), store.TriggerPreview)
	for {
		d, _, err := f.st.PruneDeploymentLogs(f.ctx, now.Add(-90*24*time.Hour), 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			break
		}
	}
	for id, want := range map[int64]int{prodOld: 0, prodLast: 1, previewOld: 0, previewLast: 1} {
		got, err := f.st.Logs(f.ctx, id, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("deployment %d keeps %d log lines, want %d", id, len(got), want)
		}
	}
}
