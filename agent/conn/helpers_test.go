package conn_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
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

// logBuffer captures slog output and lets a test wait for a message.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return n, err
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor blocks until s occurs n times in the log.
func (l *logBuffer) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		ch := l.changed
		got := strings.Count(l.buf.String(), s)
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("log never said %q %d times; log:\n%s", s, n, l.String())
		}
	}
}

type agent struct {
	client  *conn.Client
	journal *journal.Journal
	logs    *logBuffer
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
	return startAgentWithJournal(t, srv, runner, j, tweak)
}

func startAgentWithJournal(t *testing.T, srv *agenttest.Server, runner conn.Runner, j *journal.Journal, tweak func(*conn.Options)) *agent {
	t.Helper()
	logs := newLogBuffer()
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
	a := &agent{client: c, journal: j, logs: logs, stop: cancel, done: make(chan struct{})}
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
