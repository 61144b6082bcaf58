package conn_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
)

const testToken = "stg_agt42_Zk9sUPERsecretVALUE"

// fakeRunner is a Runner whose behaviour each test supplies.
type fakeRunner struct {
	DeployFn func(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult
}

func (f fakeRunner) Deploy(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult {
	return f.DeployFn(ctx, job, ev)
}

// agent is a running Client and what a test reads of it.
type agent struct {
	journal *journal.Journal
	logs    *agenttest.LogBuffer
	stop    context.CancelFunc
	// done is closed when Run returns; err is then its result.
	done chan struct{}
	err  error
}

// startAgent runs a Client against srv with fast timings; tweak adjusts the options.
func startAgent(t *testing.T, srv *agenttest.Server, runner conn.Runner, tweak func(*conn.Options)) *agent {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &agenttest.LogBuffer{}
	opts := conn.Options{
		ServerURL:      srv.URL(),
		Token:          testToken,
		Runner:         runner,
		Journal:        j,
		AgentVersion:   "1.2.3-test",
		Hostname:       "box-1",
		Versions:       func(context.Context) (string, string) { return "27.5.1", "2.40.3" },
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:        conn.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		RefusedBackoff: conn.Backoff{Base: 300 * time.Millisecond, Max: 300 * time.Millisecond, Min: 300 * time.Millisecond},
		PingInterval:   time.Second,
		PongTimeout:    30 * time.Second, // a pong may wait seconds behind a big frame on a loaded machine
		ShutdownGrace:  5 * time.Second,
		FlushTimeout:   2 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	c, err := conn.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{journal: j, logs: logs, stop: cancel, done: make(chan struct{})}
	go func() {
		a.err = c.Run(ctx)
		close(a.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			t.Error("agent did not stop")
		}
		if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), "Zk9sUPERsecretVALUE") {
			t.Errorf("agent log contains the token:\n%s", logs.String())
		}
	})
	return a
}

// rig is an agent under test, the protocol server it talks to and the test's context; its
// methods fail the test when the server cannot do what they ask.
type rig struct {
	t   *testing.T
	ctx context.Context
	srv *agenttest.Server
	// agent is nil until start.
	*agent
}

// newRig starts a protocol server that accepts testToken and, with autoAck, acknowledges
// every result.
func newRig(t *testing.T, autoAck bool) *rig {
	t.Helper()
	return &rig{t: t, ctx: testCtx(t), srv: agenttest.New(t, agenttest.Options{Token: testToken, AutoAck: autoAck})}
}

// connect starts a server and an agent (see newRig and start) and waits for the agent's
// first connection.
func connect(t *testing.T, autoAck bool, runner conn.Runner, tweak func(*conn.Options)) *rig {
	t.Helper()
	r := newRig(t, autoAck)
	r.start(runner, tweak)
	r.connected(1)
	return r
}

// start runs the agent against the rig's server (see startAgent).
func (r *rig) start(runner conn.Runner, tweak func(*conn.Options)) {
	r.t.Helper()
	r.agent = startAgent(r.t, r.srv, runner, tweak)
}

// connected waits for the agent's nth connection and returns its HELLO.
func (r *rig) connected(n int) protocol.Hello {
	r.t.Helper()
	h, err := r.srv.WaitConnected(r.ctx, n)
	if err != nil {
		r.t.Fatalf("waiting for connection %d: %v", n, err)
	}
	return h
}

// deploy sends a DEPLOY of deploy(id) for each id, in order.
func (r *rig) deploy(ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		if err := r.srv.Deploy(r.ctx, deploy(id)); err != nil {
			r.t.Fatal(err)
		}
	}
}

// frame waits for the agent's frame of type typ about job id.
func (r *rig) frame(typ, id string) agenttest.Frame {
	r.t.Helper()
	f, err := r.srv.WaitFrame(r.ctx, frameIs(typ, id))
	if err != nil {
		r.t.Fatalf("waiting for %s of %s: %v", typ, id, err)
	}
	return f
}

// result waits for the JOB_RESULT of job id.
func (r *rig) result(id string) *protocol.JobResult {
	r.t.Helper()
	return r.frame(protocol.TypeJobResult, id).Payload.(*protocol.JobResult)
}

// returned waits for the agent's Run to return after stop, and fails unless it returned nil:
// a clean shutdown. The minute is generous: the shutdown tests set their own timeouts far
// longer, so a shutdown that waited on one would still be caught.
func (r *rig) returned() {
	r.t.Helper()
	select {
	case <-r.done:
		if r.err != nil {
			r.t.Fatalf("Run = %v, want nil after a clean shutdown", r.err)
		}
	case <-time.After(time.Minute):
		r.t.Fatal("Run did not return after the shutdown")
	}
}

// wait waits until cond holds for the server.
func (r *rig) wait(cond func(*agenttest.Server) bool) {
	r.t.Helper()
	if err := r.srv.Wait(r.ctx, cond); err != nil {
		r.t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func deploy(id string) protocol.Deploy {
	return protocol.Deploy{
		JobID:   id,
		Project: protocol.Project{ID: "p1", Name: "shop", ComposeProject: "shop"},
		Repo:    "acme/shop",
		Ref:     "refs/heads/main",
		SHA:     "0123456789abcdef0123456789abcdef01234567",
		Source:  protocol.Source{TarballURL: "https://example.invalid/tarball", Token: "ghs_sourceTOKEN"},
		Secrets: []protocol.Secret{{Key: "DB_PASSWORD", Value: "hunter2-secret", Scope: protocol.ScopeGlobal}},
	}
}

func success(id string) protocol.JobResult {
	return protocol.JobResult{JobID: id, Status: protocol.StatusSuccess, Services: []protocol.ServiceStatus{{Name: "web", State: "running"}}, DurationMS: 42}
}

// resultsFor returns the results delivered for one job.
func resultsFor(srv *agenttest.Server, id string) []protocol.JobResult {
	var out []protocol.JobResult
	for _, r := range srv.Results() {
		if r.JobID == id {
			out = append(out, r)
		}
	}
	return out
}

func frameIs(typ, jobID string) func(agenttest.Frame) bool {
	return func(f agenttest.Frame) bool {
		if f.Type != typ {
			return false
		}
		switch v := f.Payload.(type) {
		case *protocol.JobAccepted:
			return v.JobID == jobID
		case *protocol.JobResult:
			return v.JobID == jobID
		case *protocol.JobPhase:
			return v.JobID == jobID
		case *protocol.LogChunk:
			return v.JobID == jobID
		}
		return true
	}
}
