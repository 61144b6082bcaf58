package conn_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/agent/selfupdate"
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

// scriptBuild stands in for an agent build: it answers --version.
func scriptBuild(version string) []byte {
	return []byte("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'stagely-agent " + version + "'; exit 0; fi\nsleep 60\n")
}

// trialOfV2 installs build v2 over a v1 binary with a real Updater, as the v1 agent does
// when the server offers v2, and returns the binary's path, v2's trial after its re-exec
// and the v2 Updater the next start of the agent would run.
func trialOfV2(t *testing.T, confirmWithin time.Duration) (string, *selfupdate.Trial, func() *selfupdate.Updater) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "stagely-agent")
	if err := os.WriteFile(exe, scriptBuild("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	v2 := scriptBuild("v2")
	dl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(v2) }))
	t.Cleanup(dl.Close)
	data := t.TempDir()
	updater := func(version string) *selfupdate.Updater {
		u, err := selfupdate.New(selfupdate.Options{Exe: exe, DataDir: data, ServerURL: dl.URL, Version: version,
			ConfirmWithin: confirmWithin, Exec: func(string, []string, []string) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	sum := sha256.Sum256(v2)
	offer := protocol.Update{Version: "v2", Platform: "linux/amd64", SHA256: hex.EncodeToString(sum[:]), Path: "/agent/download/linux/amd64"}
	if err := updater("v1").Apply(context.Background(), offer, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	trial, err := updater("v2").Resume()
	if err != nil || trial == nil {
		t.Fatalf("Resume after the update = %v, %v; want a trial", trial, err)
	}
	return exe, trial, func() *selfupdate.Updater { return updater("v2") }
}

// TestClient_NewBuildIsConfirmedOnlyOnceTheServerAcceptsItsConnection: HELLO written is not
// enough; a build the server refuses right after HELLO (as it refuses a duplicate agent)
// is rolled back when its trial runs out.
func TestClient_NewBuildIsConfirmedOnlyOnceTheServerAcceptsItsConnection(t *testing.T) {
	t.Parallel()
	t.Run("refused after HELLO: rolled back", func(t *testing.T) {
		t.Parallel()
		exe, trial, _ := trialOfV2(t, 3*time.Second)
		r := &rig{t: t, ctx: testCtx(t), srv: agenttest.New(t, agenttest.Options{Token: testToken, RefuseAfterHello: protocol.CloseReasonDuplicate})}
		r.start(fakeRunner{}, func(o *conn.Options) { o.OnAccepted = trial.Confirm })
		// Two HELLOs written, both refused.
		r.connected(2)
		select {
		case <-trial.Expired():
		case <-time.After(time.Minute):
			t.Fatal("the trial was confirmed though the server refused every connection")
		}
		if err := trial.RollBack(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(exe); err != nil || string(b) != string(scriptBuild("v1")) {
			t.Fatalf("binary after the rollback = %q, %v; want the v1 build", b, err)
		}
	})
	t.Run("accepted: kept", func(t *testing.T) {
		t.Parallel()
		exe, trial, nextStart := trialOfV2(t, 10*time.Minute)
		accepted := make(chan struct{}, 8)
		r := connect(t, true, fakeRunner{}, func(o *conn.Options) {
			o.OnAccepted = func() { trial.Confirm(); accepted <- struct{}{} }
		})
		select {
		case <-accepted:
		case <-r.ctx.Done():
			t.Fatal("the server accepted the connection and the agent never said so")
		}
		// Confirmed: the next start finds no trial, and v2 stays.
		if again, err := nextStart().Resume(); again != nil || err != nil {
			t.Fatalf("Resume after the acceptance = %v, %v; want no trial", again, err)
		}
		if b, err := os.ReadFile(exe); err != nil || string(b) != string(scriptBuild("v2")) {
			t.Fatalf("binary = %q, %v; want the v2 build", b, err)
		}
	})
}
