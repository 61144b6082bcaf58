package conn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/agenttest"
	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
)

func TestClient_HelloFirstWithProtocolVersionAndUnackedResults(t *testing.T) {
	t.Parallel()
	r := connect(t, false, fakeRunner{}, nil)
	// A result journaled as by an earlier run of the agent.
	if err := r.journal.Put(success("job-old")); err != nil {
		t.Fatal(err)
	}
	r.srv.Drop()
	h := r.connected(2)
	frames := r.srv.Frames()
	for _, f := range frames {
		if f.Conn == 2 {
			if f.Type != protocol.TypeHello {
				t.Fatalf("first frame on a connection = %s, want HELLO", f.Type)
			}
			break
		}
	}
	want := protocol.Hello{
		AgentVersion:   "1.2.3-test",
		Protocol:       protocol.Version,
		Hostname:       "box-1",
		Docker:         "27.5.1",
		Compose:        "2.40.3",
		UnackedResults: []protocol.JobResult{success("job-old")},
		Jobs:           []protocol.HeldJob{},
		Platform:       runtime.GOOS + "/" + runtime.GOARCH,
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("HELLO = %+v, want %+v", h, want)
	}
	if first := r.srv.Hellos()[0]; first.UnackedResults == nil || len(first.UnackedResults) != 0 {
		t.Fatalf("HELLO without results has unacked_results %#v, want an empty list", first.UnackedResults)
	}
}

func TestClient_ReconnectsAfterServerDropWithJitteredCappedBackoff(t *testing.T) {
	t.Parallel()
	draws := []float64{0.9, 0.2, 0.99, 0.6, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99}
	var n atomic.Int64
	backoff := conn.Backoff{Base: 60 * time.Millisecond, Max: 200 * time.Millisecond}
	r := connect(t, false, fakeRunner{}, func(o *conn.Options) {
		o.Backoff = backoff
		o.Rand = func() float64 { return draws[int(n.Add(1)-1)%len(draws)] }
	})
	r.srv.Restart(900 * time.Millisecond)
	r.connected(2)
	atts := r.srv.Attempts()
	if len(atts) < 4 {
		t.Fatalf("got %d attempts, want the first connection and several redials", len(atts))
	}
	if atts[len(atts)-1].Status != 101 {
		t.Fatalf("last attempt status %d, want 101", atts[len(atts)-1].Status)
	}
	// The delays the agent chose, from its log; how long a redial then takes on top of the
	// delay depends on the machine, so real gaps are only checked from below.
	waits := retryDelays(t, r.logs.String())
	if len(waits) != len(atts)-1 {
		t.Fatalf("%d redial delays logged for %d redials", len(waits), len(atts)-1)
	}
	distinct := map[time.Duration]bool{}
	for i, got := range waits {
		want := backoff.Delay(i, draws[i%len(draws)])
		if got != want.Round(time.Millisecond) {
			t.Errorf("redial %d waits %v, want %v (full jitter, cap %v)", i+1, got, want, backoff.Max)
		}
		if got > backoff.Max {
			t.Errorf("redial %d waits %v, above the cap %v", i+1, got, backoff.Max)
		}
		if i > 0 {
			if gap := atts[i+1].At.Sub(atts[i].At); gap < want-5*time.Millisecond {
				t.Errorf("redial %d came after %v, before its delay %v", i+1, gap, want)
			}
		}
		distinct[got.Round(10*time.Millisecond)] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("redial delays %v not jittered", distinct)
	}
}

// retryDelays returns the retry_in of each "disconnected from server" line of a JSON log.
func retryDelays(t *testing.T, log string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec struct {
			Msg     string        `json:"msg"`
			RetryIn time.Duration `json:"retry_in"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "disconnected from server" {
			out = append(out, rec.RetryIn)
		}
	}
	return out
}

func TestClient_RefusedTokenRetriedSlowlyLoggedWithoutToken(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.srv.SetRefuse(true)
	r.start(fakeRunner{}, nil)
	r.wait(func(s *agenttest.Server) bool { return len(s.Attempts()) >= 3 })
	atts := r.srv.Attempts()
	for i := 1; i < 3; i++ {
		if atts[i].Status != 401 {
			t.Fatalf("attempt %d status %d, want 401", i, atts[i].Status)
		}
		// Ordinary failures here retry within 50ms; a refused token waits the slow floor.
		if gap := atts[i].At.Sub(atts[i-1].At); gap < 290*time.Millisecond {
			t.Fatalf("refused token retried after %v, want at least the 300ms slow floor", gap)
		}
	}
	r.logs.WaitFor(t, "token refused: check STAGELY_TOKEN or rotate it in the dashboard", 2)
	r.srv.SetRefuse(false)
	r.connected(1)
	// The cleanup of startAgent asserts the token never reached the log.
}

// blockingRunner runs jobs that report a phase, then wait for release (or cancellation).
type blockingRunner struct {
	started chan string
	release chan struct{}
	calls   atomic.Int64
}

func newBlockingRunner() *blockingRunner {
	return &blockingRunner{started: make(chan string, 10), release: make(chan struct{})}
}

func (b *blockingRunner) Deploy(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult {
	b.calls.Add(1)
	ev.Phase(protocol.PhaseFetching)
	b.started <- job.JobID
	select {
	case <-b.release:
		return success(job.JobID)
	case <-ctx.Done():
		return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusCancelled, Error: context.Cause(ctx).Error()}
	}
}

func TestClient_ResultFinishedWhileDisconnectedDeliveredOnceAfterReconnect(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	r := connect(t, false, runner, nil)
	r.deploy("job-1")
	<-runner.started
	r.frame(protocol.TypeJobPhase, "job-1")
	r.srv.Restart(time.Hour)
	r.logs.WaitFor(t, "disconnected from server", 1)
	close(runner.release) // the job ends while the agent cannot reach the server
	r.logs.WaitFor(t, `"msg":"job finished"`, 1)
	if _, ok, _ := r.journal.Get("job-1"); !ok {
		t.Fatal("result not journaled while disconnected")
	}
	r.srv.Restart(0)
	h := r.connected(2)
	if len(h.UnackedResults) != 1 || h.UnackedResults[0].JobID != "job-1" || h.UnackedResults[0].Status != protocol.StatusSuccess {
		t.Fatalf("HELLO after reconnect carries %+v, want job-1's success", h.UnackedResults)
	}
	if err := r.srv.Ack(r.ctx, "job-1"); err != nil {
		t.Fatal(err)
	}
	r.logs.WaitFor(t, `"msg":"result acknowledged"`, 1)
	if _, ok, _ := r.journal.Get("job-1"); ok {
		t.Fatal("result still journaled after RESULT_ACK")
	}
	r.srv.Drop()
	if h3 := r.connected(3); len(h3.UnackedResults) != 0 {
		t.Fatalf("HELLO after ack carries %+v, want none", h3.UnackedResults)
	}
	if got := resultsFor(r.srv, "job-1"); len(got) != 1 {
		t.Fatalf("job-1 delivered %d times, want exactly once: %+v", len(got), got)
	}
}

func TestClient_DuplicateDeployOfFinishedJobNotRerun(t *testing.T) {
	t.Parallel()
	for _, acked := range []bool{false, true} {
		name := "result still journaled"
		if acked {
			name = "result already acknowledged"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			r := connect(t, false, fakeRunner{DeployFn: func(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult {
				calls.Add(1)
				return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusFailure, Error: "compose up: exit 1", Services: []protocol.ServiceStatus{}, DurationMS: 7}
			}}, nil)
			r.deploy("job-1")
			first := r.frame(protocol.TypeJobResult, "job-1")
			if acked {
				if err := r.srv.Ack(r.ctx, "job-1"); err != nil {
					t.Fatal(err)
				}
				r.logs.WaitFor(t, `"msg":"result acknowledged"`, 1)
			}
			r.deploy("job-1")
			r.wait(func(s *agenttest.Server) bool { return len(resultsFor(s, "job-1")) == 2 })
			got := resultsFor(r.srv, "job-1")
			if !reflect.DeepEqual(got[1], *first.Payload.(*protocol.JobResult)) {
				t.Fatalf("repeated result %+v differs from the first %+v", got[1], got[0])
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("runner called %d times, want 1", n)
			}
			for _, f := range r.srv.Frames() {
				if f.Type == protocol.TypeJobAccepted && f.At.After(first.At) {
					t.Fatal("repeated DEPLOY of a finished job was accepted again")
				}
			}
		})
	}
}

func TestClient_CancelCancelsRunningJobContext(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	r := connect(t, true, runner, nil)
	r.deploy("job-1")
	<-runner.started
	if err := r.srv.Cancel(r.ctx, "job-1"); err != nil {
		t.Fatal(err)
	}
	if res := r.result("job-1"); res.Status != protocol.StatusCancelled || res.Error != "cancelled by the server" {
		t.Fatalf("result = %+v, want cancelled by the server", res)
	}
}

func TestClient_CancelOfQueuedJobNeverRunsIt(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	r := connect(t, true, runner, nil)
	for _, id := range []string{"job-1", "job-2"} {
		r.deploy(id)
		r.frame(protocol.TypeJobAccepted, id)
	}
	<-runner.started
	if err := r.srv.Cancel(r.ctx, "job-2"); err != nil {
		t.Fatal(err)
	}
	if res := r.result("job-2"); res.Status != protocol.StatusCancelled {
		t.Fatalf("queued job result = %+v, want cancelled", res)
	}
	close(runner.release)
	r.result("job-1")
	if n := runner.calls.Load(); n != 1 {
		t.Fatalf("runner called %d times, want only job-1", n)
	}
}

func TestClient_FullQueueRefusesDeployAsBusy(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	r := connect(t, true, runner, func(o *conn.Options) { o.MaxQueuedJobs = 1 })
	r.deploy("job-1")
	<-runner.started
	r.deploy("job-2", "job-3")
	if res := r.result("job-3"); res.Status != protocol.StatusFailure || !strings.Contains(res.Error, "agent busy") {
		t.Fatalf("result of the job past the queue = %+v, want failure 'agent busy'", res)
	}
	close(runner.release)
	for _, id := range []string{"job-1", "job-2"} {
		if res := r.result(id); res.Status != protocol.StatusSuccess {
			t.Fatalf("%s = %+v, want success", id, res)
		}
	}
}

func TestClient_LogSeqOrderedAndGapFreeAcrossReconnect(t *testing.T) {
	t.Parallel()
	phase2 := make(chan struct{})
	r := connect(t, true, fakeRunner{DeployFn: func(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult {
		for i := 1; i <= 50; i++ {
			ev.Log(protocol.StreamStdout, fmt.Sprintf("line %d", i))
		}
		<-phase2
		for i := 51; i <= 120; i++ {
			ev.Log(protocol.StreamStderr, fmt.Sprintf("line %d", i))
		}
		return success(job.JobID)
	}}, nil)
	r.deploy("job-1")
	r.wait(func(s *agenttest.Server) bool { return len(s.Logs("job-1")) == 50 })
	r.srv.Restart(time.Hour)
	r.logs.WaitFor(t, "disconnected from server", 1)
	close(phase2)
	r.logs.WaitFor(t, `"msg":"job finished"`, 1)
	r.srv.Restart(0)
	r.wait(func(s *agenttest.Server) bool { return len(resultsFor(s, "job-1")) == 1 })
	logs := r.srv.Logs("job-1")
	if len(logs) != 120 {
		t.Fatalf("server got %d lines, want 120", len(logs))
	}
	for i, l := range logs {
		if l.Seq != int64(i+1) || l.Line != fmt.Sprintf("line %d", i+1) || l.TS.IsZero() {
			t.Fatalf("chunk %d = %+v, want seq %d 'line %d' with a timestamp", i, l, i+1, i+1)
		}
	}
	// The result follows its last line instead of jumping ahead of it in HELLO.
	var lastLog, result time.Time
	for _, f := range r.srv.Frames() {
		switch v := f.Payload.(type) {
		case *protocol.LogChunk:
			lastLog = f.At
		case *protocol.JobResult:
			result = f.At
		case *protocol.Hello:
			if len(v.UnackedResults) > 0 {
				t.Fatalf("result sent in HELLO ahead of its queued lines")
			}
		}
	}
	if result.Before(lastLog) {
		t.Fatal("JOB_RESULT arrived before the job's last LOG_CHUNK")
	}
}

func TestClient_BadServerFramesCloseWithReasonAndReconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		frame  []byte
		code   websocket.StatusCode
		reason string
	}{
		{"unknown type", []byte(`{"type":"EXPLODE","payload":{}}`), websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType},
		{"agent-to-server type", []byte(`{"type":"HELLO","payload":{"protocol":1}}`), websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType},
		{"not json", []byte(`{"type":`), websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"payload of the wrong shape", []byte(`{"type":"CANCEL","payload":{"job_id":42}}`), websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"deploy without job id", []byte(`{"type":"DEPLOY","payload":{"sha":"abc"}}`), websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"oversized frame", []byte(`{"type":"CANCEL","payload":{"job_id":"` + strings.Repeat("x", protocol.MaxFrameBytes) + `"}}`), websocket.StatusMessageTooBig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := connect(t, false, fakeRunner{}, nil)
			_ = r.srv.SendRaw(r.ctx, tt.frame) // the agent may cut an oversized frame short
			r.wait(func(s *agenttest.Server) bool { return len(s.Closures()) >= 1 })
			cl := r.srv.Closures()[0]
			// An agent that stops reading mid-frame closes its socket with unread data, so
			// TCP may reset the connection before the server reads the close frame.
			cutShort := tt.code == websocket.StatusMessageTooBig && cl.Code == -1
			if !cutShort && (cl.Code != tt.code || (tt.reason != "" && cl.Reason != tt.reason)) {
				t.Fatalf("agent closed with %d %q (%v), want %d %q", cl.Code, cl.Reason, cl.Err, tt.code, tt.reason)
			}
			r.connected(2) // the agent reconnects
		})
	}
}

func TestClient_MissingPongTearsConnectionDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	// Silent for the rest of the test: only the agent's pong timeout can end the connection.
	r.srv.StallNext(time.Hour)
	r.start(fakeRunner{}, func(o *conn.Options) {
		o.PingInterval = 100 * time.Millisecond
		o.PongTimeout = 200 * time.Millisecond
	})
	r.connected(2)
	r.logs.WaitFor(t, "no pong within 200ms", 1)
}

func TestClient_ShutdownLetsRunningJobFinishAndRefusesNewJobs(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	// The result must be flushed, not left to the journal because a busy machine took longer
	// than a short FlushTimeout to acknowledge it.
	r := connect(t, true, runner, func(o *conn.Options) { o.FlushTimeout = time.Hour })
	r.deploy("job-1")
	<-runner.started
	r.stop() // SIGTERM
	r.logs.WaitFor(t, "shutting down: waiting for the running job", 1)
	r.deploy("job-2")
	if res := r.result("job-2"); res.Status != protocol.StatusFailure || !strings.Contains(res.Error, "agent shutting down") {
		t.Fatalf("deploy during shutdown = %+v, want a failure saying the agent is shutting down", res)
	}
	select {
	case <-r.done:
		t.Fatalf("Run returned %v while a job was still running", r.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(runner.release)
	r.returned()
	if got := resultsFor(r.srv, "job-1"); len(got) != 1 || got[0].Status != protocol.StatusSuccess {
		t.Fatalf("job-1 results = %+v, want its success delivered before exit", got)
	}
	if entries, _ := r.journal.List(); len(entries) != 0 {
		t.Fatalf("journal holds %d results after a flushed shutdown, want 0", len(entries))
	}
	r.wait(func(s *agenttest.Server) bool { return len(s.Closures()) == 1 })
	if cl := r.srv.Closures()[0]; cl.Code != websocket.StatusGoingAway {
		t.Fatalf("agent closed with %d %q, want going away", cl.Code, cl.Reason)
	}
}

func TestClient_ShutdownCancelsJobAfterGrace(t *testing.T) {
	t.Parallel()
	runner := newBlockingRunner()
	r := connect(t, true, runner, func(o *conn.Options) {
		o.ShutdownGrace = 200 * time.Millisecond
		// A shutdown that waited on either of these would outlast the test: Run must return
		// once the cancelled job has returned and its result is acknowledged.
		o.CancelWait = time.Hour
		o.FlushTimeout = time.Hour
	})
	r.deploy("job-1")
	<-runner.started
	start := time.Now()
	r.stop()
	r.returned()
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("shutdown took %v, want at least the 200ms grace", took)
	}
	got := resultsFor(r.srv, "job-1")
	if len(got) != 1 || got[0].Status != protocol.StatusCancelled || !strings.Contains(got[0].Error, "shutdown grace") {
		t.Fatalf("job-1 results = %+v, want one cancelled result naming the shutdown grace", got)
	}
}

func TestClient_RunnerPanicBecomesFailedResult(t *testing.T) {
	t.Parallel()
	r := connect(t, true, fakeRunner{DeployFn: func(context.Context, protocol.Deploy, deployer.Events) protocol.JobResult {
		panic("boom")
	}}, nil)
	r.deploy("job-1")
	if res := r.result("job-1"); res.Status != protocol.StatusFailure || !strings.Contains(res.Error, "boom") {
		t.Fatalf("result = %+v, want failure naming the panic", res)
	}
}

func TestClient_DeployNeverLogsSourceTokenOrSecrets(t *testing.T) {
	t.Parallel()
	r := connect(t, true, fakeRunner{DeployFn: func(_ context.Context, job protocol.Deploy, _ deployer.Events) protocol.JobResult {
		return success(job.JobID)
	}}, nil)
	r.deploy("job-1")
	r.logs.WaitFor(t, `"msg":"result acknowledged"`, 1)
	for _, secret := range []string{"ghs_sourceTOKEN", "hunter2-secret"} {
		if strings.Contains(r.logs.String(), secret) {
			t.Fatalf("agent log contains %q:\n%s", secret, r.logs.String())
		}
	}
}

func TestNew_RejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"ftp scheme", "ftp://example.com", "scheme must be https://"},
		{"no host", "https://", "no host"},
		{"credentials in URL", "https://u:p@example.com", "must not carry a user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := conn.New(conn.Options{ServerURL: tt.url, Token: testToken, Runner: fakeRunner{}, Journal: nil})
			if err == nil {
				t.Fatal("New accepted bad options")
			}
			_, err = conn.WebSocketURL(tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WebSocketURL(%q) = %v, want %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestWebSocketURL_MapsSchemeAndKeepsPathPrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://stagely.example.com":  "wss://stagely.example.com/agent/ws",
		"https://example.com/stagely/": "wss://example.com/stagely/agent/ws",
		"http://127.0.0.1:8080":        "ws://127.0.0.1:8080/agent/ws",
	} {
		got, err := conn.WebSocketURL(in)
		if err != nil || got != want {
			t.Errorf("WebSocketURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// recoveringRunner deploys like fakeRunner and, for an interrupted job, reports the phase
// it was given.
type recoveringRunner struct{ fakeRunner }

func (recoveringRunner) Recover(_ context.Context, job protocol.Deploy, phase string, ev deployer.Events) protocol.JobResult {
	ev.Log(protocol.StreamSystem, "recovering")
	return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusFailure, Error: "The agent restarted during the deploy (while " + phase + ")"}
}

// killedJob is what a killed agent left in its journal at dir: job-killed begun, without a
// result.
func killedJob(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(deploy("job-killed")); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestClient_JobInterruptedByAKillIsRecoveredAndReportedAfterTheRestart(t *testing.T) {
	t.Parallel()
	// What a killed agent left: a job begun, at the deploying phase, with no result.
	j := killedJob(t, filepath.Join(t.TempDir(), "journal"))
	if err := j.Phase("job-killed", protocol.PhaseDeploying); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, true)
	r.start(recoveringRunner{}, func(o *conn.Options) { o.Journal = j })
	h := r.connected(1)
	res := r.result("job-killed")
	if res.Status != protocol.StatusFailure || res.Error != "The agent restarted during the deploy (while deploying)" {
		t.Fatalf("result %+v", res)
	}
	// Lines of the recovery follow whatever the killed agent sent for the job.
	if logs := r.srv.Logs("job-killed"); len(logs) == 0 || logs[0].Seq <= 1<<32 {
		t.Fatalf("recovery lines %+v, want seq above 2^32", logs)
	}
	// Listed in the first HELLO unless the recovery finished before it was built.
	for _, held := range h.Jobs {
		if held.JobID == "job-killed" && held.State != protocol.JobRunning && held.State != protocol.JobFinished {
			t.Fatalf("HELLO lists the interrupted job as %q", held.State)
		}
	}
	// The start record goes once the result is journaled.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := j.Interrupted()
		if err == nil && len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start record still there: %+v, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClient_AJobThatCannotBeJournaledDoesNotRun: the start record is what lets a restarted
// agent remove a killed job's secrets override, so a job whose start cannot be recorded
// fails without touching anything.
func TestClient_AJobThatCannotBeJournaledDoesNotRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A file where the start records' folder belongs: every Begin fails.
	if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	runner := fakeRunner{DeployFn: func(context.Context, protocol.Deploy, deployer.Events) protocol.JobResult {
		ran.Store(true)
		return protocol.JobResult{Status: protocol.StatusSuccess}
	}}
	r := connect(t, true, runner, func(o *conn.Options) { o.Journal = j })
	r.deploy("job-1")
	res := r.result("job-1")
	if res.Status != protocol.StatusFailure || !strings.Contains(res.Error, "could not record the job's start") {
		t.Fatalf("result %+v, want a failure saying the start could not be recorded", res)
	}
	if ran.Load() {
		t.Fatal("the job ran without a start record")
	}
}

// TestClient_LinesOfASecondRecoveryAreKeptAfterThoseOfTheFirst: an agent killed during the
// recovery of a job recovers it again at its next start; the server ignores a seq it has
// stored, so the second recovery's lines must be numbered past the first's.
func TestClient_LinesOfASecondRecoveryAreKeptAfterThoseOfTheFirst(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	j := killedJob(t, dir)
	// The first recovery never returns, as in a process killed mid-way: released, it would
	// write to the journal while the test's directory is removed.
	never := make(chan struct{})
	var recoveries atomic.Int32
	runner := recoveringFn(func(ev deployer.Events) protocol.JobResult {
		n := recoveries.Add(1)
		ev.Log(protocol.StreamSystem, fmt.Sprintf("recovery %d", n))
		if n == 1 {
			<-never
		}
		return protocol.JobResult{JobID: "job-killed", Status: protocol.StatusFailure, Error: "restarted"}
	})
	fast := func(o *conn.Options) {
		o.Journal = j
		o.ShutdownGrace = 10 * time.Millisecond
		o.CancelWait = 10 * time.Millisecond
	}
	r := newRig(t, true)
	r.start(runner, fast)
	r.wait(func(s *agenttest.Server) bool { return len(s.Logs("job-killed")) == 1 })
	r.stop()
	<-r.done

	j2, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.start(runner, func(o *conn.Options) { fast(o); o.Journal = j2 })
	r.result("job-killed")
	r.wait(func(s *agenttest.Server) bool { return len(s.Logs("job-killed")) >= 2 })
	logs := r.srv.Logs("job-killed")
	if len(logs) != 2 || logs[0].Line != "recovery 1" || logs[1].Line != "recovery 2" || logs[1].Seq <= logs[0].Seq {
		t.Fatalf("lines the server keeps: %+v, want recovery 1 then recovery 2, numbered in order", logs)
	}
}

// recoveringFn deploys nothing and recovers an interrupted job with its function.
type recoveringFn func(ev deployer.Events) protocol.JobResult

func (recoveringFn) Deploy(_ context.Context, job protocol.Deploy, _ deployer.Events) protocol.JobResult {
	return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusFailure, Error: "no deploys here"}
}

func (f recoveringFn) Recover(_ context.Context, _ protocol.Deploy, _ string, ev deployer.Events) protocol.JobResult {
	return f(ev)
}

func TestClient_HelloListsTheFeaturesItIsGiven(t *testing.T) {
	t.Parallel()
	r := connect(t, false, fakeRunner{}, func(o *conn.Options) { o.Features = []string{protocol.FeaturePreviews} })
	h := r.connected(1)
	if !slices.Contains(h.Features, protocol.FeaturePreviews) {
		t.Fatalf("HELLO features = %v, want %q among them", h.Features, protocol.FeaturePreviews)
	}
}
