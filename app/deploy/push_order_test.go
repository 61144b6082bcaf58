package deploy_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// pushDelivered handles a push of sha that came as webhook delivery guid. When firstSent is
// set, the delivery is a redelivery the recovery loop asked for, of an event GitHub first tried
// to send then, as attempt seq.
func (e *env) pushDelivered(p store.Project, sha, guid string, firstSent time.Time, seq int64) string {
	e.t.Helper()
	if !firstSent.IsZero() {
		r := store.Redelivery{GUID: guid, Event: "push", GitHubAttemptID: seq, FirstAttemptAt: firstSent, RequestedAt: time.Now()}
		if _, err := e.st.ClaimRedelivery(e.ctx, r, time.Now(), 3); err != nil {
			e.t.Fatal(err)
		}
	}
	d, _, err := e.st.RecordDelivery(e.ctx, store.NewDelivery{DeliveryID: guid, Event: "push", Payload: []byte("{}")})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.handlePush(d.ID, p, webhook.Push{After: sha})
}

func TestPushHandler_APushOlderThanOneAlreadyDeployedIsRecordedSuperseded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, first := e.project(&a)
	second, third := e.commit(p, "second"), e.commit(p, "third")
	missed := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

	// The three pushes were missed during an outage in one second and come back newest first.
	if got := e.pushDelivered(p, third, "g3", missed, 3); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("newest recovered push decided %q", got)
	}
	newest := e.latest(p)
	for _, old := range []struct{ sha, guid string }{{second, "g2"}, {first, "g1"}} {
		got := e.pushDelivered(p, old.sha, old.guid, missed, int64(old.guid[1]-'0'))
		want := "by #" + strconv.FormatInt(newest.ID, 10) + " (" + third[:7] + "), a newer push to main that reached Stagely first"
		if !strings.HasPrefix(got, "superseded: #") || !strings.HasSuffix(got, want) {
			t.Fatalf("older recovered push %s decided %q, want superseded %s", old.sha[:7], got, want)
		}
		d := e.latest(p)
		if d.SHA != old.sha || d.Status != store.DeploymentSuperseded || d.SupersededBy.Int64 != newest.ID || !d.FinishedAt.Valid {
			t.Fatalf("deployment of %s: %+v", old.sha[:7], d)
		}
		run := e.checkRun(p, old.sha)
		if run.Status != "completed" || run.Conclusion != "skipped" || !strings.Contains(run.Summary, "reached Stagely after") {
			t.Fatalf("check run on %s: %s %s %q", old.sha[:7], run.Status, run.Conclusion, run.Summary)
		}
	}
	if jobs := e.hub.jobs(); len(jobs) != 1 || jobs[0].SHA != third {
		t.Fatalf("dispatched %d jobs, want only the newest commit", len(jobs))
	}

	// A push received live after the outage is newer than every recovered one: it deploys.
	fourth := e.commit(p, "fourth")
	if got := e.pushDelivered(p, fourth, "g4", time.Time{}, 0); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("a live push after the outage decided %q", got)
	}
	if d := e.latest(p); d.SHA != fourth || d.Status != store.DeploymentQueued {
		t.Fatalf("live push: %s %s", d.SHA[:7], d.Status)
	}
}

func TestPushHandler_ALatePushIsReportedSkippedOnItsCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box")
	p, first := e.project(&a)
	second := e.commit(p, "second")
	missed := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	e.pushDelivered(p, second, "g2", missed, 2)
	e.pushDelivered(p, first, "g1", missed, 1)
	assertGolden(t, filepath.Join("testdata", "reports", "late_push_recorded_superseded.golden"), e.writes())
}
