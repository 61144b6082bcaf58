package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
)

// frame is one frame a test client read, or the error that ended its reading.
type frame struct {
	typ string
	v   any
	err error
}

// readAll reads c in the background until it ends, so that the client answers pings (the
// library answers them only while a Read is under way); frames arrive on the channel.
func readAll(t *testing.T, c *websocket.Conn) <-chan frame {
	t.Helper()
	out := make(chan frame, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		defer close(out)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				out <- frame{err: err}
				return
			}
			typ, v, err := protocol.Decode(b)
			select {
			case out <- frame{typ: typ, v: v, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func TestReader_ReadsPongsWhileTheSinkWaitsOnASlowGitHub(t *testing.T) {
	t.Parallel()
	const pongTimeout = 2 * time.Second
	entered := make(chan struct{})
	release := make(chan struct{})
	sink := &fakeSink{JobResultFn: func(ctx context.Context, _ int64, _ protocol.JobResult) error {
		close(entered)
		// Reporting the result to GitHub takes far longer than the pong timeout.
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}
	e := newEnv(t, sink, func(o *hub.Options) {
		o.PingInterval = 50 * time.Millisecond
		// Seconds, not milliseconds: a loaded machine can leave a healthy connection's pong
		// unread for a few hundred milliseconds.
		o.PongTimeout = pongTimeout
		o.HeartbeatEvery = time.Nanosecond
	})
	agent, c := e.connectNew("box")
	frames := readAll(t, c)
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: "1", Status: protocol.StatusSuccess})
	<-entered
	blocked := time.Now()
	// The sink stays blocked for twice the pong timeout: a reader stuck behind it would read
	// no pong in that time, and the hub would drop the agent.
	eventually(t, "twice the pong timeout while the sink waits", func() bool { return time.Since(blocked) > 2*pongTimeout })
	// Each heartbeat is a pong the reader read while the sink was still blocked.
	from := e.st.touches.Load()
	eventually(t, "ten more heartbeats while the sink waits", func() bool { return e.st.touches.Load() >= from+10 })
	if !e.hub.Online(agent.ID) {
		t.Fatal("agent dropped while the sink waited")
	}
	close(release)
	f := <-frames
	if ack, ok := f.v.(*protocol.ResultAck); f.err != nil || !ok || ack.JobID != "1" {
		t.Fatalf("client got %s %+v (%v), want RESULT_ACK 1", f.typ, f.v, f.err)
	}
	if strings.Contains(e.logs.String(), "agent silent") {
		t.Fatalf("the hub thought the agent silent:\n%s", e.logs.String())
	}
}

func TestHello_JobsTheAgentHoldsGoToTheSinkBeforeAgentConnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	hello := helloV1()
	hello.Jobs = []protocol.HeldJob{{JobID: "7", State: protocol.JobRunning}, {JobID: "8", State: protocol.JobFinished}}
	e.connect(agent.ID, token, hello)
	want := []string{
		fmt.Sprintf("JobsHeld %d 7:running,8:finished", agent.ID),
		fmt.Sprintf("AgentConnected %d v1.2.3", agent.ID),
	}
	eventually(t, "AgentConnected", func() bool { return len(e.sink.Events()) == len(want) })
	if got := e.sink.Events(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sink calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The running job counts as in flight; the finished one does not.
	if e.hub.Idle(agent.ID) {
		t.Fatal("agent idle while its HELLO lists a running job")
	}
}

func TestHello_Version1AgentIsServedWithoutLogAcksOrJobList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.LogFlushEvery = time.Hour })
	agent, token := e.newAgent("box")
	hello := helloV1()
	hello.Protocol = 1
	c := e.connect(agent.ID, token, hello)
	jobID := e.newDeployment(agent.ID)
	for i := 1; i <= 3; i++ {
		send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: int64(i), Stream: "stdout", Line: "x", TS: time.Now()})
	}
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: jobID, Status: protocol.StatusSuccess})
	// A version 1 agent does not know LOG_ACK: the first frame back is the result's ack.
	expect(t, c, protocol.TypeResultAck)
	for _, ev := range e.sink.Events() {
		if strings.HasPrefix(ev, "JobsHeld") {
			t.Fatalf("sink got %q for an agent that lists no jobs", ev)
		}
	}
}
