package conn_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/protocol"
)

// failingInstall is an Updater whose install fails after it took the hold, as a failed
// rename or dir sync does; it waits for fail before returning.
type failingInstall struct {
	held chan bool
	fail chan struct{}
}

func (f *failingInstall) Apply(ctx context.Context, _ protocol.Update, hold func() bool) error {
	f.held <- hold()
	select {
	case <-f.fail:
		return errors.New("install the new build: rename: read-only file system")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestClient_UpdateThatFailsAfterTheHoldTakesDeploysAgain(t *testing.T) {
	t.Parallel()
	up := &failingInstall{held: make(chan bool, 1), fail: make(chan struct{})}
	r := connect(t, true, fakeRunner{DeployFn: func(_ context.Context, d protocol.Deploy, _ deployer.Events) protocol.JobResult {
		return success(d.JobID)
	}}, func(o *conn.Options) { o.Updater = up })
	offer := protocol.Update{Version: "v2", Platform: "linux/amd64", SHA256: strings.Repeat("ab", 32), Path: "/agent/download/linux/amd64"}
	if err := r.srv.Send(r.ctx, protocol.TypeUpdate, offer); err != nil {
		t.Fatal(err)
	}
	if !<-up.held {
		t.Fatal("hold refused on an idle agent")
	}
	r.deploy("job-1")
	if res := r.result("job-1"); res.Status != protocol.StatusFailure || !strings.Contains(res.Error, "agent shutting down") {
		t.Fatalf("deploy while the update holds the queue = %+v, want the shutting-down refusal", res)
	}
	close(up.fail)
	f, err := r.srv.WaitFrame(r.ctx, func(f agenttest.Frame) bool { return f.Type == protocol.TypeUpdateFailed })
	if err != nil {
		t.Fatal(err)
	}
	if uf := f.Payload.(*protocol.UpdateFailed); uf.Version != "v2" || !strings.Contains(uf.Error, "rename") {
		t.Fatalf("UPDATE_FAILED = %+v, want v2 with the install error", uf)
	}
	r.deploy("job-2")
	if res := r.result("job-2"); res.Status != protocol.StatusSuccess {
		t.Fatalf("deploy after the failed update = %+v, want it run", res)
	}
}
