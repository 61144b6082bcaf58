package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
)

// scriptedRunner stands in for the deployer: it reports phases and lines, then succeeds.
type scriptedRunner struct{ lines int }

func (r scriptedRunner) Deploy(_ context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult {
	ev.Phase(protocol.PhaseBuilding)
	for i := 1; i <= r.lines; i++ {
		ev.Log(protocol.StreamStdout, fmt.Sprintf("step %d", i))
	}
	ev.Phase(protocol.PhaseDeploying)
	return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusSuccess, Services: []protocol.ServiceStatus{{Name: "web", State: "running"}}, DurationMS: 5}
}

// TestAgent_RealClientDeploysAndItsResultSurvivesAServerRestart runs the agent's own
// connection code against the hub: a deploy with its logs, a result the server fails to
// record, a server restart, and the result delivered again in HELLO and acknowledged.
func TestAgent_RealClientDeploysAndItsResultSurvivesAServerRestart(t *testing.T) {
	t.Parallel()
	refuse := atomic.Bool{}
	refuse.Store(true)
	sink := &fakeSink{JobResultFn: func(context.Context, int64, protocol.JobResult) error {
		if refuse.Load() {
			return errors.New("database unavailable")
		}
		return nil
	}}
	e := newEnv(t, sink, nil)
	agent, token := e.newAgent("box")
	jobID := e.newDeployment(agent.ID)

	// The HTTP server outlives the first hub, as a restarted process would keep its URL.
	var current atomic.Pointer[hub.Hub]
	current.Store(e.hub)
	mux := http.NewServeMux()
	mux.Handle("/agent/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) }))
	srv := newServer(t, mux)

	j, err := journal.Open(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := conn.New(conn.Options{
		ServerURL:    srv,
		Token:        token,
		Runner:       scriptedRunner{lines: 300},
		Journal:      j,
		AgentVersion: "0.9.0-test",
		Hostname:     "box-1",
		Versions:     func(context.Context) (string, string) { return "27.5.1", "2.40.3" },
		Logger:       slog.New(slog.NewTextHandler(e.logs, nil)),
		Backoff:      conn.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}()

	a := e.waitStatus(agent.ID, "online")
	// The row says online before the hub has handled the whole HELLO; a DEPLOY waits for that.
	eventually(t, "the agent's HELLO handled", func() bool { return e.hub.Idle(agent.ID) })
	if a.Version != "0.9.0-test" || a.DockerVersion != "27.5.1" {
		t.Fatalf("agent row: %+v", a)
	}
	if err := e.hub.Dispatch(ctx, agent.ID, protocol.Deploy{JobID: jobID, Repo: "alice/web"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused result", func() bool { return sink.has(fmt.Sprintf("JobResult %d %s success", agent.ID, jobID)) })
	got, err := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 1000)
	if err != nil || len(got) != 300 {
		t.Fatalf("%d lines stored (err %v), want 300", len(got), err)
	}
	if entries, err := j.List(); err != nil || len(entries) != 1 {
		t.Fatalf("journal holds %d results (err %v); the unacknowledged one must stay", len(entries), err)
	}

	// Restart: the old hub shuts down (the agent meets 503 meanwhile), then a new one with
	// a working sink takes the URL, as a new process would.
	e.hub.Close()
	refuse.Store(false)
	next := hub.New(hub.Options{Store: e.st, Sink: sink, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	t.Cleanup(next.Close)
	current.Store(next)

	eventually(t, "the journal emptied by RESULT_ACK", func() bool {
		entries, err := j.List()
		return err == nil && len(entries) == 0
	})
	if !next.Online(agent.ID) {
		t.Fatal("agent not connected to the new hub")
	}
	e.waitStatus(agent.ID, "online")
}
