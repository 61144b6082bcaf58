package retention_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stagely/stagely/app/retention"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
)

// history is a database with, for one project, deployments that finished finishedAt ago with
// two log lines each, and one decided delivery per deployment.
type history struct {
	st          *store.Store
	deployments []int64
	deliveries  []string
}

func newHistory(t *testing.T, n int, finishedAgo time.Duration) *history {
	t.Helper()
	ctx := context.Background()
	st := storetest.NewStore(t)
	u := storetest.NewUser(t, st, store.User{GitHubID: 1, Login: "alice"})
	in := storetest.NewInstallation(t, st, store.Installation{GitHubID: 2, AccountLogin: "alice", AccountID: 3, AccountType: "User"})
	p := storetest.NewProject(t, st, store.NewProject{UserID: u.ID, InstallationID: in.ID, Name: "web", RepoID: 4, RepoFullName: "alice/web", DeployBranch: "main"})
	a := storetest.NewAgent(t, st, u.ID, "box")
	h := &history{st: st}
	at := time.Now().Add(-finishedAgo)
	for i := range n {
		id := fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i)
		if _, _, err := st.RecordDelivery(ctx, store.NewDelivery{DeliveryID: id, Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		claimed, err := st.ClaimDeliveries(ctx, 1, time.Minute, time.Now())
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		if err := st.FinishDelivery(ctx, claimed[0].ID, store.DeliveryDone, "deployed", at); err != nil {
			t.Fatal(err)
		}
		d, err := st.CreateDeployment(ctx, store.NewDeployment{ProjectID: p.ID, SHA: fmt.Sprintf("%040x", i+1), Ref: "refs/heads/main", Trigger: store.TriggerPush})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.MarkDispatched(ctx, d.ID, a.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		lines := []store.LogLine{{Seq: 1, Stream: "stdout", Line: "up", TS: at}, {Seq: 2, Stream: "stdout", Line: "healthy", TS: at}}
		if err := st.AppendAgentLogs(ctx, d.ID, a.ID, lines); err != nil {
			t.Fatal(err)
		}
		if err := st.FinishDeployment(ctx, d.ID, store.DeploymentSuccess, "", nil, at); err != nil {
			t.Fatal(err)
		}
		if err := st.SetReportedStatus(ctx, d.ID, store.DeploymentSuccess); err != nil {
			t.Fatal(err)
		}
		h.deployments, h.deliveries = append(h.deployments, d.ID), append(h.deliveries, id)
	}
	return h
}

// left counts the deployments that still have logs and the deliveries still recorded.
func (h *history) left(t *testing.T) (withLogs, deliveries int) {
	t.Helper()
	for _, id := range h.deployments {
		lines, err := h.st.Logs(context.Background(), id, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) > 0 {
			withLogs++
		}
	}
	for _, id := range h.deliveries {
		if _, err := h.st.DeliveryByDeliveryID(context.Background(), id); err == nil {
			deliveries++
		}
	}
	return withLogs, deliveries
}

func TestPrune_DeletesWhatTheRetentionSaysAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		opt            retention.Options
		finishedAgo    time.Duration
		wantLogs       int
		wantDeliveries int
	}{
		{"older than both retentions", retention.Options{Logs: 90 * 24 * time.Hour, KeepLast: 2, Deliveries: 30 * 24 * time.Hour}, 100 * 24 * time.Hour, 2, 0},
		{"younger than both retentions", retention.Options{Logs: 90 * 24 * time.Hour, KeepLast: 2, Deliveries: 30 * 24 * time.Hour}, 10 * 24 * time.Hour, 5, 5},
		{"zero retention keeps for ever", retention.Options{}, 1000 * 24 * time.Hour, 5, 5},
		{"keep none of the last", retention.Options{Logs: time.Hour, Deliveries: 7 * 24 * time.Hour}, 8 * 24 * time.Hour, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHistory(t, 5, tt.finishedAgo)
			tt.opt.Store, tt.opt.Batch = h.st, 2
			rep, err := retention.New(tt.opt).Prune(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			logs, deliveries := h.left(t)
			if logs != tt.wantLogs || deliveries != tt.wantDeliveries {
				t.Fatalf("left %d deployments with logs and %d deliveries, want %d and %d (report %+v)", logs, deliveries, tt.wantLogs, tt.wantDeliveries, rep)
			}
			if rep.Deployments != int64(5-tt.wantLogs) || rep.LogLines != 2*rep.Deployments || rep.Deliveries != int64(5-tt.wantDeliveries) {
				t.Fatalf("report %+v does not match what was deleted", rep)
			}
		})
	}
}

func TestRun_PrunesAtStartAndReturnsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	h := newHistory(t, 3, 100*24*time.Hour)
	p := retention.New(retention.Options{Store: h.st, Logs: 90 * 24 * time.Hour, Deliveries: 30 * 24 * time.Hour, Every: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waittest.Until(t, 30*time.Second, "Run to prune at start", func() bool {
		logs, deliveries := h.left(t)
		return logs == 0 && deliveries == 0
	})
	cancel()
	waittest.Returned(t, done, 30*time.Second, "Run")
}
