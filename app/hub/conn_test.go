package hub_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
)

func TestHello_MarksAgentOnlineWithItsVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	e.connect(agent.ID, token, helloV1())

	a := e.waitStatus(agent.ID, "online")
	if a.Version != "v1.2.3" || a.Hostname != "box-1" || a.DockerVersion != "27.1.0" || a.ComposeVersion != "2.40.3" || !a.LastHeartbeat.Valid {
		t.Fatalf("agent row after HELLO: %+v", a)
	}
	if !e.hub.Online(agent.ID) || e.hub.ConnectedCount() != 1 {
		t.Fatalf("Online = %v, ConnectedCount = %d; want true, 1", e.hub.Online(agent.ID), e.hub.ConnectedCount())
	}
}

func TestHandshake_ProtocolViolationsCloseWithTheProtocolReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	wrongVersion := helloV1()
	wrongVersion.Protocol = protocol.Version + 1
	helloFrame, _ := protocol.Encode(protocol.TypeHello, helloV1())
	phase, _ := protocol.Encode(protocol.TypeJobPhase, protocol.JobPhase{JobID: "1", Phase: "building"})
	deploy, _ := protocol.Encode(protocol.TypeDeploy, protocol.Deploy{JobID: "1"})
	ackless, _ := protocol.Encode(protocol.TypeJobResult, protocol.JobResult{Status: "success"})

	cases := []struct {
		name     string
		frames   [][]byte
		wantCode websocket.StatusCode
		want     string
	}{
		{"wrong protocol version", [][]byte{mustEncode(t, protocol.TypeHello, wrongVersion)}, websocket.StatusPolicyViolation, protocol.CloseReasonProtocolVersion},
		{"first frame not HELLO", [][]byte{phase}, websocket.StatusPolicyViolation, protocol.CloseReasonHelloFirst},
		{"unknown type first", [][]byte{[]byte(`{"type":"SHELL","payload":{}}`)}, websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType},
		{"unknown type after HELLO", [][]byte{helloFrame, []byte(`{"type":"SHELL","payload":{"cmd":"rm"}}`)}, websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType},
		{"server type from agent", [][]byte{helloFrame, deploy}, websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType},
		{"not JSON", [][]byte{helloFrame, []byte(`{"type":`)}, websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"payload of the wrong shape", [][]byte{helloFrame, []byte(`{"type":"LOG_CHUNK","payload":{"seq":"one"}}`)}, websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"result without job id", [][]byte{helloFrame, ackless}, websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame},
		{"second HELLO", [][]byte{helloFrame, helloFrame}, websocket.StatusPolicyViolation, protocol.CloseReasonBadFrame},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := e.dial(token)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.frames {
				sendRaw(t, c, f)
			}
			ce := closeOf(t, c)
			if ce.Code != tc.wantCode || ce.Reason != tc.want {
				t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, tc.wantCode, tc.want)
			}
			e.waitStatus(agent.ID, "offline")
		})
	}
}

func mustEncode(t *testing.T, typ string, payload any) []byte {
	t.Helper()
	b, err := protocol.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshake_SilentClientClosedAfterHelloTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.HelloTimeout = 100 * time.Millisecond })
	agent, token := e.newAgent("box")
	c, _, err := e.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, c); ce.Reason != protocol.CloseReasonHelloFirst {
		t.Fatalf("closed with %v, want %q", ce, protocol.CloseReasonHelloFirst)
	}
	if a := e.agentRow(agent.ID); a.Status != "offline" || a.LastHeartbeat.Valid {
		t.Fatalf("a connection without HELLO touched the agent: %+v", a)
	}
}

func TestRead_OversizedFrameClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	c := e.connect(agent.ID, token, helloV1())
	big := mustEncode(t, protocol.TypeLogChunk, protocol.LogChunk{JobID: "1", Seq: 1, Stream: "stdout", Line: strings.Repeat("x", protocol.MaxFrameBytes)})
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, big) // the server may hang up mid-frame
	_, _, readErr := c.Read(ctx)
	if code := websocket.CloseStatus(readErr); code != websocket.StatusMessageTooBig && code != -1 {
		t.Fatalf("closed with %d, want %d (or a reset mid-frame)", code, websocket.StatusMessageTooBig)
	}
	e.waitStatus(agent.ID, "offline")

	c = e.connect(agent.ID, token, helloV1())
	e.waitStatus(agent.ID, "online")
	if err := e.hub.Cancel(agent.ID, "7"); err != nil {
		t.Fatalf("the server is not fine after an oversized frame: %v", err)
	}
	expect(t, c, protocol.TypeCancel)
}

func TestCancel_FreesTheAgentForItsNextJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	jobID := e.dispatch(agent.ID, c)
	if e.hub.Idle(agent.ID) {
		t.Fatal("idle with a job in flight")
	}
	e.waitStatus(agent.ID, "busy")
	if err := e.hub.Cancel(agent.ID, jobID); err != nil {
		t.Fatal(err)
	}
	expect(t, c, protocol.TypeCancel)
	if !e.hub.Idle(agent.ID) {
		t.Fatal("a cancelled job still keeps the agent busy")
	}
	e.waitStatus(agent.ID, "online")
}

func TestDispatch_OfflineAgentIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, _ := e.newAgent("box")
	err := e.hub.Dispatch(e.ctx, agent.ID, protocol.Deploy{JobID: "1"})
	if !errors.Is(err, hub.ErrAgentOffline) {
		t.Fatalf("Dispatch to an offline agent = %v, want ErrAgentOffline", err)
	}
	if err := e.hub.Cancel(agent.ID, "1"); !errors.Is(err, hub.ErrAgentOffline) {
		t.Fatalf("Cancel on an offline agent = %v, want ErrAgentOffline", err)
	}
}

func TestDispatch_SendsDeployMarksBusyAndResultAcksAndFreesTheAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	jobID := e.newDeployment(agent.ID)

	job := protocol.Deploy{JobID: jobID, Repo: "alice/web", SHA: strings.Repeat("b", 40), Secrets: []protocol.Secret{{Key: "K", Value: "v", Scope: "global"}}}
	if err := e.hub.Dispatch(e.ctx, agent.ID, job); err != nil {
		t.Fatal(err)
	}
	typ, v := recv(t, c)
	if got, ok := v.(*protocol.Deploy); typ != protocol.TypeDeploy || !ok || got.JobID != jobID || got.Secrets[0].Value != "v" {
		t.Fatalf("client got %s %+v, want the DEPLOY", typ, v)
	}
	if a := e.agentRow(agent.ID); a.Status != "busy" {
		t.Fatalf("status after Dispatch = %s, want busy", a.Status)
	}

	send(t, c, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: jobID})
	send(t, c, protocol.TypeJobPhase, protocol.JobPhase{JobID: jobID, Phase: protocol.PhaseBuilding})
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: jobID, Status: protocol.StatusSuccess, Services: []protocol.ServiceStatus{{Name: "web", State: "running"}}})
	typ, v = recv(t, c)
	if ack, ok := v.(*protocol.ResultAck); typ != protocol.TypeResultAck || !ok || ack.JobID != jobID {
		t.Fatalf("client got %s %+v, want RESULT_ACK %s", typ, v, jobID)
	}
	e.waitStatus(agent.ID, "online")
	want := []string{
		fmt.Sprintf("AgentConnected %d v1.2.3", agent.ID),
		fmt.Sprintf("JobAccepted %d %s", agent.ID, jobID),
		fmt.Sprintf("JobPhase %d %s building", agent.ID, jobID),
		fmt.Sprintf("JobResult %d %s success", agent.ID, jobID),
	}
	if got := e.sink.Events(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sink calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCancel_SendsCancelFrame(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	if err := e.hub.Cancel(agent.ID, "42"); err != nil {
		t.Fatal(err)
	}
	typ, v := recv(t, c)
	if cn, ok := v.(*protocol.Cancel); typ != protocol.TypeCancel || !ok || cn.JobID != "42" {
		t.Fatalf("client got %s %+v, want CANCEL 42", typ, v)
	}
}

func TestJobResult_SinkErrorRetriedThenConnectionClosedForTheAgentToResend(t *testing.T) {
	t.Parallel()
	sink := sinkRefusing("1")
	// The first retry comes 100 ms after the first refusal: a window of seconds leaves room
	// for it even when a loaded machine stalls the hub for a while.
	e := newEnv(t, sink, func(o *hub.Options) { o.StoreRetryFor = 3 * time.Second })
	agent, c := e.connectNew("box")

	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: "1", Status: protocol.StatusFailure})
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: "2", Status: protocol.StatusSuccess})
	// No ack for job 1: the agent keeps it journaled and sends it again after it reconnects.
	if ce := closeOf(t, c); ce.Code != websocket.StatusTryAgainLater || ce.Reason != protocol.CloseReasonRetryLater {
		t.Fatalf("connection closed with %v, want %v %q", ce, websocket.StatusTryAgainLater, protocol.CloseReasonRetryLater)
	}
	if n := strings.Count(strings.Join(sink.Events(), "\n"), fmt.Sprintf("JobResult %d 1 failure", agent.ID)); n < 2 {
		t.Fatalf("sink saw job 1 %d times, want retries:\n%s", n, strings.Join(sink.Events(), "\n"))
	}
}

func TestHello_UnackedResultsGoToTheSinkAndEachIsAckedAfterARetry(t *testing.T) {
	t.Parallel()
	var refused atomic.Bool
	sink := &fakeSink{JobResultFn: func(_ context.Context, _ int64, res protocol.JobResult) error {
		// The database fails the first write of job 12, as one down for a moment.
		if res.JobID == "12" && refused.CompareAndSwap(false, true) {
			return errors.New("database down")
		}
		return nil
	}}
	e := newEnv(t, sink, nil)
	agent, token := e.newAgent("box")
	hello := helloV1()
	hello.UnackedResults = []protocol.JobResult{
		{JobID: "11", Status: protocol.StatusSuccess},
		{JobID: "12", Status: protocol.StatusRolledBack},
		{JobID: "13", Status: protocol.StatusCancelled},
	}
	c := e.connect(agent.ID, token, hello)
	var acks []string
	for range 3 {
		typ, v := recv(t, c)
		ack, ok := v.(*protocol.ResultAck)
		if typ != protocol.TypeResultAck || !ok {
			t.Fatalf("client got %s %+v, want RESULT_ACK", typ, v)
		}
		acks = append(acks, ack.JobID)
	}
	if strings.Join(acks, ",") != "11,12,13" {
		t.Fatalf("acks %v, want 11,12,13 in order", acks)
	}
	events := strings.Join(sink.Events(), "\n")
	if n := strings.Count(events, fmt.Sprintf("JobResult %d 12 rolled_back", agent.ID)); n != 2 {
		t.Fatalf("sink saw job 12 %d times, want 2 (one refused, one retry):\n%s", n, events)
	}
	for _, want := range []string{"JobResult %d 11 success", "JobResult %d 13 cancelled"} {
		if !strings.Contains(events, fmt.Sprintf(want, agent.ID)) {
			t.Fatalf("sink calls lack %q:\n%s", want, events)
		}
	}
	// Results first, then AgentConnected: the sink knows these jobs ended before it may
	// dispatch new work to the agent.
	eventually(t, "AgentConnected", func() bool { return sink.has(fmt.Sprintf("AgentConnected %d v1.2.3", agent.ID)) })
	if last := sink.Events()[len(sink.Events())-1]; !strings.HasPrefix(last, "AgentConnected") {
		t.Fatalf("last sink call %q, want AgentConnected after the results", last)
	}
}

// A first connection whose agent stopped reading (so it cannot answer the newcomer's ping:
// a cut network, a frozen process) is dead: the newcomer takes over. duplicate_test.go has
// the healthy case.
func TestConnect_SecondConnectionReplacesAFirstThatAnswersNoPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.PongTimeout = 200 * time.Millisecond })
	agent, token := e.newAgent("box")
	first := e.connect(agent.ID, token, helloV1())
	jobID := e.dispatch(agent.ID, first)
	second := e.connect(agent.ID, token, protocol.Hello{AgentVersion: "v2", Protocol: protocol.Version})
	if ce := closeOf(t, first); ce.Reason != protocol.CloseReasonReplaced {
		t.Fatalf("first connection closed with %v, want %q", ce, protocol.CloseReasonReplaced)
	}
	eventually(t, "replaced connection torn down", func() bool { return strings.Contains(e.logs.String(), "agent connection replaced") })
	// The job carried over: the agent is still busy with it on its new connection.
	if a := e.agentRow(agent.ID); a.Status != "busy" || a.Version != "v2" {
		t.Fatalf("agent after replacement: status %s version %s, want busy v2", a.Status, a.Version)
	}
	if e.hub.ConnectedCount() != 1 || e.logIndex(disconnectedLine(agent.ID)) >= 0 {
		t.Fatalf("replacement counted as a disconnect:\n%s", e.logs.String())
	}
	send(t, second, protocol.TypeJobResult, protocol.JobResult{JobID: jobID, Status: protocol.StatusSuccess})
	expect(t, second, protocol.TypeResultAck)
	e.waitStatus(agent.ID, "online")
}

func TestDisconnect_MarksOfflineAndReportsJobsInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	e.dispatch(agent.ID, c)
	if err := c.Close(websocket.StatusGoingAway, "agent shutting down"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(agent.ID, "offline")
	eventually(t, "the disconnect with its job in flight", func() bool {
		return e.logIndex(disconnectedLine(agent.ID)+" active_jobs=1") >= 0
	})
	if e.hub.Online(agent.ID) {
		t.Fatal("hub still reports the agent online")
	}
}

func TestPing_SilentAgentClosedWithGoingAwayAndMarkedOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) {
		o.PingInterval = 30 * time.Millisecond
		o.PongTimeout = 100 * time.Millisecond
	})
	agent, token := e.newAgent("box")
	// This client never reads, so the server's pings go unanswered.
	e.connect(agent.ID, token, helloV1())
	e.waitStatus(agent.ID, "offline")
	eventually(t, "the disconnect", func() bool { return e.logIndex(disconnectedLine(agent.ID)+" active_jobs=0") >= 0 })
	if !strings.Contains(e.logs.String(), "agent silent") {
		t.Fatalf("no log of the pong timeout:\n%s", e.logs.String())
	}
}

func TestPing_AnsweringAgentStaysAndHeartbeatIsThrottled(t *testing.T) {
	t.Parallel()
	// The heartbeat is throttled by Options.Now, which only the test moves: how many pings a
	// loaded machine manages per real second does not matter.
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	e := newEnv(t, nil, func(o *hub.Options) {
		o.PingInterval = 10 * time.Millisecond
		o.PongTimeout = 30 * time.Second
		o.HeartbeatEvery = time.Minute
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	agent, token := e.newAgent("box")
	var pings atomic.Int64
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, _, err := websocket.Dial(e.ctx, e.wsURL(), &websocket.DialOptions{
		HTTPHeader:     h,
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send(t, c, protocol.TypeHello, helloV1())
	c.CloseRead(e.ctx) // answers pings
	first := e.waitStatus(agent.ID, "online").LastHeartbeat.Time

	eventually(t, "30 pings", func() bool { return pings.Load() >= 30 })
	if n := e.st.touches.Load(); n != 0 {
		t.Fatalf("%d heartbeats written for %d pings within one HeartbeatEvery, want none", n, pings.Load())
	}
	now.Add(int64(time.Minute))
	eventually(t, "a heartbeat", func() bool { return e.agentRow(agent.ID).LastHeartbeat.Time.After(first) })
	base := pings.Load()
	eventually(t, "30 more pings", func() bool { return pings.Load() >= base+30 })
	p, touches := pings.Load(), e.st.touches.Load()
	if touches != 1 {
		t.Fatalf("%d heartbeats written for %d pings with one HeartbeatEvery passed, want 1", touches, p)
	}
	if !e.hub.Online(agent.ID) {
		t.Fatal("an agent answering pings was dropped")
	}
}

func TestClose_EveryAgentSeesShutdownAndGoesOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	a1, tok1 := e.newAgent("one")
	a2, tok2 := e.newAgent("two")
	c1 := e.connect(a1.ID, tok1, helloV1())
	c2 := e.connect(a2.ID, tok2, helloV1())
	done := make(chan websocket.CloseError, 2)
	for _, c := range []*websocket.Conn{c1, c2} {
		go func() {
			_, _, err := c.Read(context.Background())
			var ce websocket.CloseError
			errors.As(err, &ce)
			done <- ce
		}()
	}
	e.hub.Close()
	for range 2 {
		if ce := <-done; ce.Code != websocket.StatusGoingAway || ce.Reason != protocol.CloseReasonShutdown {
			t.Fatalf("client saw %v, want going away %q", ce, protocol.CloseReasonShutdown)
		}
	}
	// Close returns once every connection is torn down.
	for _, id := range []int64{a1.ID, a2.ID} {
		if a := e.agentRow(id); a.Status != "offline" {
			t.Fatalf("agent %d is %s after Close, want offline", id, a.Status)
		}
	}
	_, resp, err := e.dial(tok1)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: resp %v, err %v; want 503", resp, err)
	}
}

func TestLogs_StoredInOrderInFewBatchesBeforeTheResult(t *testing.T) {
	t.Parallel()
	const lines = 1000
	var e *env
	var storedAtResult atomic.Int64
	sink := &fakeSink{JobResultFn: func(ctx context.Context, _ int64, res protocol.JobResult) error {
		id := mustParse(t, res.JobID)
		got, err := e.st.Logs(ctx, id, 0, 10*lines)
		if err != nil {
			return err
		}
		storedAtResult.Store(int64(len(got)))
		return nil
	}}
	// Only full batches and the result flush the buffer here: a time-based flush would
	// make the INSERT count depend on how fast this machine sends 1000 frames.
	e = newEnv(t, sink, func(o *hub.Options) { o.LogFlushEvery = time.Hour })
	agent, c := e.connectNew("box")
	jobID := e.newDeployment(agent.ID)

	ts := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	streams := []string{protocol.StreamStdout, protocol.StreamStderr, protocol.StreamSystem}
	for i := 1; i <= lines; i++ {
		send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: int64(i), Stream: streams[i%3], Line: fmt.Sprintf("line %d", i), TS: ts.Add(time.Duration(i) * time.Millisecond)})
	}
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: jobID, Status: protocol.StatusSuccess})
	// Every line is confirmed before the result is: the agent may forget them.
	var confirmed int64
	for confirmed < lines {
		ack, ok := expect(t, c, protocol.TypeLogAck).(*protocol.LogAck)
		if !ok || ack.JobID != jobID || ack.Seq <= confirmed {
			t.Fatalf("LOG_ACK %+v after seq %d", ack, confirmed)
		}
		confirmed = ack.Seq
	}
	expect(t, c, protocol.TypeResultAck)
	if n := storedAtResult.Load(); n != lines {
		t.Fatalf("%d lines stored when the sink got the result, want all %d", n, lines)
	}
	got, err := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 10*lines)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got {
		if l.Seq != int64(i+1) || l.Line != fmt.Sprintf("line %d", i+1) || l.Stream != streams[(i+1)%3] || !l.TS.Equal(ts.Add(time.Duration(i+1)*time.Millisecond)) {
			t.Fatalf("line %d stored as %+v", i+1, l)
		}
	}
	calls := e.st.appendLogs.Load()
	t.Logf("%d lines stored with %d INSERTs", lines, calls)
	if calls > lines/50 {
		t.Fatalf("%d lines took %d INSERTs, want batches (at most %d)", lines, calls, lines/50)
	}
}

func TestLogs_FlushedByTimeWithoutAResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.LogFlushEvery = 20 * time.Millisecond })
	agent, c := e.connectNew("box")
	jobID := e.newDeployment(agent.ID)
	for i := 1; i <= 3; i++ {
		send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: int64(i), Stream: "stdout", Line: "building", TS: time.Now()})
	}
	eventually(t, "3 stored lines", func() bool {
		got, err := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 10)
		return err == nil && len(got) == 3
	})
}

func TestLogs_AnAgentCannotWriteIntoAnotherAgentsDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.LogFlushEvery = 20 * time.Millisecond })
	owner, ownerToken := e.newAgent("owner")
	intruder, intruderToken := e.newAgent("intruder")
	jobID := e.newDeployment(owner.ID)
	bad := e.connect(intruder.ID, intruderToken, helloV1())
	send(t, bad, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: 1, Stream: "stdout", Line: "forged", TS: time.Now()})
	// Frames are handled in order: once the intruder's result is acked, its line was handled.
	send(t, bad, protocol.TypeJobResult, protocol.JobResult{JobID: jobID, Status: protocol.StatusSuccess})
	untilAck(t, bad, jobID)
	good := e.connect(owner.ID, ownerToken, helloV1())
	send(t, good, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: 2, Stream: "stdout", Line: "real", TS: time.Now()})
	e.flushed(t, jobID, 1)
	got, _ := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 10)
	if len(got) != 1 || got[0].Line != "real" {
		t.Fatalf("stored %+v, want only the owner's line", got)
	}
	// The forged line was dropped before it was buffered: it never reached the store.
	if n := e.st.appendLogs.Load(); n != 1 {
		t.Fatalf("%d log writes, want only the owner's", n)
	}
}

func TestLogs_NonNumericJobIDIsDroppedWithAWarning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	for i := 1; i <= 5; i++ {
		send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: "job-abc", Seq: int64(i), Stream: "stdout", Line: "x"})
	}
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: "job-abc", Status: protocol.StatusSuccess})
	// Dropped lines are confirmed all the same: sending them again would not help.
	if ack, ok := expect(t, c, protocol.TypeLogAck).(*protocol.LogAck); !ok || ack.JobID != "job-abc" || ack.Seq != 5 {
		t.Fatalf("LOG_ACK %+v, want job-abc up to 5", ack)
	}
	expect(t, c, protocol.TypeResultAck)
	if n := strings.Count(e.logs.String(), "job id is not a deployment id"); n != 1 {
		t.Fatalf("%d warnings about the job id, want exactly 1:\n%s", n, e.logs.String())
	}
	if e.st.appendLogs.Load() != 0 {
		t.Fatal("lines of a non-numeric job id were passed on")
	}
	if !e.hub.Online(agent.ID) {
		t.Fatal("a bad job id dropped the connection")
	}
}

func TestLogs_LeftoverLinesStoredWhenTheAgentDisconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.LogFlushEvery = time.Hour })
	agent, c := e.connectNew("box")
	jobID := e.newDeployment(agent.ID)
	for i := 1; i <= 7; i++ {
		send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: int64(i), Stream: "stdout", Line: "x", TS: time.Now()})
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	e.waitStatus(agent.ID, "offline")
	got, err := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 100)
	if err != nil || len(got) != 7 {
		t.Fatalf("%d lines stored after the disconnect (err %v), want 7", len(got), err)
	}
}

func mustParse(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscan(s, &id); err != nil {
		t.Fatalf("job id %q: %v", s, err)
	}
	return id
}

func TestReconnect_SlowOfflineOfTheOldConnectionNeverOverridesTheNewOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	gate := make(chan struct{})
	var held atomic.Bool
	e.st.SetAgentStatusFn = func(status string) {
		if status == "offline" && held.CompareAndSwap(false, true) {
			<-gate
		}
	}
	agent, token := e.newAgent("box")
	old := e.connect(agent.ID, token, protocol.Hello{AgentVersion: "old", Protocol: protocol.Version})
	_ = old.CloseNow()
	eventually(t, "the old connection's offline write to start", held.Load)

	// The agent redials while the old connection's teardown is stuck in the store.
	c, _, err := e.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	send(t, c, protocol.TypeHello, protocol.Hello{AgentVersion: "new", Protocol: protocol.Version})
	eventually(t, "the new connection registered", func() bool { return e.hub.Online(agent.ID) })
	close(gate)

	eventually(t, "the new AgentConnected", func() bool { return e.sink.has(fmt.Sprintf("AgentConnected %d new", agent.ID)) })
	want := []string{
		fmt.Sprintf("AgentConnected %d old", agent.ID),
		fmt.Sprintf("AgentConnected %d new", agent.ID),
	}
	if got := e.sink.Events(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sink calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The old connection's departure was handled before the new one's arrival.
	gone, back := e.logIndex(disconnectedLine(agent.ID)+" active_jobs=0"), e.logIndex(`msg="agent connected"`, fmt.Sprintf("agent_id=%d", agent.ID), "version=new")
	if gone < 0 || back < gone {
		t.Fatalf("the old disconnect (line %d) was not handled before the new connect (line %d):\n%s", gone, back, e.logs.String())
	}
	if a := e.agentRow(agent.ID); a.Status != "online" || a.Version != "new" {
		t.Fatalf("agent after the reconnect: %s %s, want online new", a.Status, a.Version)
	}
}
