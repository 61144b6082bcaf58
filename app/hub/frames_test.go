package hub_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/store"
)

// heapAlloc is the live heap after full collections.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// frameRow is what one forged-frame case sees: the agent, a job dispatched to it (own),
// another agent's deployment (foreign), and the results the sink was handed.
type frameRow struct {
	e       *env
	agentID int64
	own     string
	foreign string

	mu      sync.Mutex
	results []protocol.JobResult
}

func (r *frameRow) resultsOf(jobID string) []protocol.JobResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.JobResult
	for _, res := range r.results {
		if res.JobID == jobID {
			out = append(out, res)
		}
	}
	return out
}

// storedLines returns the stored lines of a job from seq after on.
func (r *frameRow) storedLines(t *testing.T, jobID string, after int64) []store.LogLine {
	t.Helper()
	lines, err := r.e.st.Logs(r.e.ctx, mustParse(t, jobID), after, 100)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// frameCase is one forged frame and what the hub must do with it.
type frameCase struct {
	name string
	// hello, when set, is the HELLO sent instead of helloV1.
	hello func() protocol.Hello
	// frames builds what the agent sends after HELLO.
	frames func(r *frameRow) [][]byte
	// closed is the close reason wanted; empty means the connection stays up.
	closed string
	check  func(t *testing.T, r *frameRow)
}

func encode(t *testing.T, typ string, payload any) []byte {
	t.Helper()
	return mustEncode(t, typ, payload)
}

// times builds n frames, the i-th from f(i).
func times(n int, f func(i int) []byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// frameCases are the forged frames. huge is a string of 3 MiB: four frames of it are
// 12 MiB the hub must not keep.
func frameCases(t *testing.T, huge string) []frameCase {
	line := func(jobID string, seq int64, stream, text string) []byte {
		return encode(t, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: seq, Stream: stream, Line: text, TS: time.Now()})
	}
	noStoreWrites := func(t *testing.T, r *frameRow) {
		if n := r.e.st.appendLogs.Load(); n != 0 {
			t.Fatalf("%d log writes reached the store, want none", n)
		}
	}
	return []frameCase{
		{name: "job id of 3 MiB in LOG_CHUNK", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte { return line(fmt.Sprint(i)+huge, 1, protocol.StreamStdout, "x") })
			}, check: noStoreWrites},
		{name: "job id of 3 MiB in JOB_ACCEPTED", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte {
					return encode(t, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: fmt.Sprint(i) + huge})
				})
			}, check: func(t *testing.T, r *frameRow) {
				if strings.Contains(strings.Join(r.e.sink.Events(), "\n"), "JobAccepted") {
					t.Fatal("a forged JOB_ACCEPTED reached the sink")
				}
			}},
		{name: "job id that is a path", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte { return [][]byte{line("../"+r.own, 1, protocol.StreamStdout, "x")} },
			check:  noStoreWrites},
		{name: "phase of 3 MiB", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte {
					return encode(t, protocol.TypeJobPhase, protocol.JobPhase{JobID: r.own, Phase: huge})
				})
			}, check: func(t *testing.T, r *frameRow) {}},
		{name: "phase that is not a word", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte {
				return [][]byte{encode(t, protocol.TypeJobPhase, protocol.JobPhase{JobID: r.own, Phase: "<b>built</b>"})}
			}, check: func(t *testing.T, r *frameRow) {}},
		{name: "unknown stream", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte { return [][]byte{line(r.own, 1, "stdin", "x")} },
			check:  noStoreWrites},
		{name: "seq 0", closed: protocol.CloseReasonBadFrame,
			frames: func(r *frameRow) [][]byte { return [][]byte{line(r.own, 0, protocol.StreamStdout, "x")} },
			check:  noStoreWrites},
		{name: "log lines of 3 MiB are stored truncated",
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte { return line(r.own, int64(i+1), protocol.StreamStdout, huge) })
			}, check: func(t *testing.T, r *frameRow) {
				r.e.flushed(t, r.own, 4)
				for _, l := range r.storedLines(t, r.own, 0) {
					if len(l.Line) > protocol.MaxLogLineBytes || !strings.HasSuffix(l.Line, protocol.TruncatedMark) {
						t.Fatalf("line %d stored with %d bytes, want at most %d ending with %q", l.Seq, len(l.Line), protocol.MaxLogLineBytes, protocol.TruncatedMark)
					}
				}
			}},
		{name: "log lines of another agent's deployment are dropped unbuffered",
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte { return line(r.foreign, int64(i+1), protocol.StreamStdout, huge) })
			}, check: func(t *testing.T, r *frameRow) {
				noStoreWrites(t, r)
				if n := strings.Count(r.e.logs.String(), "not dispatched to this agent"); n != 1 {
					t.Fatalf("%d warnings about the foreign job, want 1:\n%s", n, r.e.logs.String())
				}
			}},
		{name: "log lines of a job id that is no deployment are dropped unbuffered",
			frames: func(r *frameRow) [][]byte {
				return times(4, func(i int) []byte { return line(fmt.Sprintf("job-%d", i), 1, protocol.StreamStdout, huge) })
			}, check: noStoreWrites},
		{name: "JOB_ACCEPTED and JOB_PHASE of another agent's deployment are not passed on",
			frames: func(r *frameRow) [][]byte {
				return [][]byte{
					encode(t, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: r.foreign}),
					encode(t, protocol.TypeJobPhase, protocol.JobPhase{JobID: r.foreign, Phase: protocol.PhaseBuilding}),
				}
			}, check: func(t *testing.T, r *frameRow) {
				for _, ev := range r.e.sink.Events() {
					for _, m := range []string{"JobAccepted", "JobPhase"} {
						if strings.HasPrefix(ev, fmt.Sprintf("%s %d %s", m, r.agentID, r.foreign)) {
							t.Fatalf("sink got %q for a job not dispatched to this agent", ev)
						}
					}
				}
			}},
		{name: "HELLO fields of 3 MiB are stored truncated",
			hello: func() protocol.Hello {
				h := helloV1()
				// Three fields of 1 MiB: the frame stays under the read limit.
				h.Hostname, h.Docker, h.Compose = huge[:1<<20], huge[:1<<20], huge[:1<<20]
				return h
			}, check: func(t *testing.T, r *frameRow) {
				a := r.e.agentRow(r.agentID)
				for _, f := range []string{a.Hostname, a.DockerVersion, a.ComposeVersion} {
					if len(f) > protocol.MaxHelloFieldBytes {
						t.Fatalf("HELLO field stored with %d bytes, want at most %d", len(f), protocol.MaxHelloFieldBytes)
					}
				}
			}},
		{name: "HELLO with 200 unacked results hands the sink the first 32",
			hello: func() protocol.Hello {
				h := helloV1()
				for i := range 200 {
					h.UnackedResults = append(h.UnackedResults, protocol.JobResult{JobID: fmt.Sprintf("old-%d", i), Status: protocol.StatusSuccess})
				}
				return h
			}, check: func(t *testing.T, r *frameRow) {
				r.mu.Lock()
				n := len(r.results)
				r.mu.Unlock()
				// The results, plus the sync frame's.
				if n != protocol.MaxUnackedResults+1 {
					t.Fatalf("the sink got %d results, want %d and the sync frame's", n, protocol.MaxUnackedResults)
				}
			}},
		{name: "JOB_RESULT text of 3 MiB reaches the sink truncated",
			frames: func(r *frameRow) [][]byte {
				// Six fields of 600 KiB: the frame stays under the read limit.
				f := huge[:600<<10]
				return [][]byte{encode(t, protocol.TypeJobResult, protocol.JobResult{JobID: r.own, Status: f, Error: f,
					Services: []protocol.ServiceStatus{{Name: f, State: f, Health: f, ContainerID: f}}})}
			}, check: func(t *testing.T, r *frameRow) {
				res := r.resultsOf(r.own)
				if len(res) != 1 {
					t.Fatalf("the sink got %d results of the job, want 1", len(res))
				}
				s := res[0].Services[0]
				if len(res[0].Status) > protocol.MaxStatusBytes || len(res[0].Error) > protocol.MaxErrorBytes ||
					max(len(s.Name), len(s.State), len(s.Health), len(s.ContainerID)) > protocol.MaxServiceFieldBytes {
					t.Fatalf("result fields of %d, %d and %d bytes reached the sink", len(res[0].Status), len(res[0].Error), len(s.Name))
				}
			}},
		{name: "JOB_RESULT with 20 000 services and a 20 000-line log tail is cut",
			frames: func(r *frameRow) [][]byte {
				res := protocol.JobResult{JobID: r.own, Status: protocol.StatusFailure}
				for i := range 20000 {
					res.Services = append(res.Services, protocol.ServiceStatus{Name: fmt.Sprintf("svc-%d", i), State: "running"})
				}
				for i := range 20000 {
					res.Services[0].LogTail = append(res.Services[0].LogTail, fmt.Sprintf("tail line %d", i))
				}
				return [][]byte{encode(t, protocol.TypeJobResult, res)}
			}, check: func(t *testing.T, r *frameRow) {
				res := r.resultsOf(r.own)
				if len(res) != 1 || len(res[0].Services) != protocol.MaxServices {
					t.Fatalf("the sink got %d results with %d services, want 1 with %d", len(res), len(res[0].Services), protocol.MaxServices)
				}
				tail := res[0].Services[0].LogTail
				if len(tail) != protocol.MaxLogTailLines || tail[len(tail)-1] != "tail line 19999" {
					t.Fatalf("log tail of %d lines ending %q, want the last %d", len(tail), tail[len(tail)-1], protocol.MaxLogTailLines)
				}
			}},
		{name: "lines past the per-job limit end with one marker and are dropped",
			frames: func(r *frameRow) [][]byte {
				lines := times(5, func(i int) []byte {
					return line(r.own, protocol.MaxJobLogLines-1+int64(i), protocol.StreamStdout, fmt.Sprint("line ", i))
				})
				// The count of dropped lines is logged with the job's result.
				return append(lines, encode(t, protocol.TypeJobResult, protocol.JobResult{JobID: r.own, Status: protocol.StatusSuccess}))
			}, check: func(t *testing.T, r *frameRow) {
				r.e.flushed(t, r.own, 3)
				got := r.storedLines(t, r.own, protocol.MaxJobLogLines-2)
				want := []string{"line 0", "line 1", protocol.LogTruncatedLine}
				if len(got) != len(want) {
					t.Fatalf("stored %d lines from seq %d on, want %d: %+v", len(got), protocol.MaxJobLogLines-1, len(want), got)
				}
				for i, l := range got {
					if l.Line != want[i] || l.Seq != protocol.MaxJobLogLines-1+int64(i) {
						t.Fatalf("line %d stored as %d %q, want %q", i, l.Seq, l.Line, want[i])
					}
				}
				if got[2].Stream != protocol.StreamSystem {
					t.Fatalf("the marker came on %s, want system", got[2].Stream)
				}
				if !strings.Contains(r.e.logs.String(), "dropped=2") {
					t.Fatalf("the dropped lines were not counted in the log:\n%s", r.e.logs.String())
				}
			}},
	}
}

// flushed waits until the store holds n lines of the job.
func (e *env) flushed(t *testing.T, jobID string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d stored lines", n), func() bool {
		got, err := e.st.Logs(e.ctx, mustParse(t, jobID), 0, 1000000)
		return err == nil && len(got) >= n
	})
}

// writeAll sends frames until the server hangs up. Each write has minutes: it waits while the
// hub reads and decodes the megabytes before it under the race detector on a loaded machine,
// and a write whose context ends closes the connection.
func writeAll(c *websocket.Conn, frames [][]byte) {
	for _, f := range frames {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := c.Write(ctx, websocket.MessageText, f)
		cancel()
		if err != nil {
			return
		}
	}
}

// untilAck reads frames until the RESULT_ACK of jobID. Its deadline is generous: the frames
// before it may be megabytes the hub decodes under the race detector on a loaded machine.
func untilAck(t *testing.T, c *websocket.Conn, jobID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		typ, v := readFrame(ctx, t, c)
		if ack, ok := v.(*protocol.ResultAck); typ == protocol.TypeResultAck && ok && ack.JobID == jobID {
			return
		}
	}
}

func TestAgentFrames_EveryFieldIsBoundedAndNothingIsKept(t *testing.T) {
	// Not parallel: every row measures the heap, which other tests would move.
	huge := strings.Repeat("x", 3<<20)
	for _, tc := range frameCases(t, huge) {
		t.Run(tc.name, func(t *testing.T) {
			r := &frameRow{}
			sink := &fakeSink{JobResultFn: func(_ context.Context, _ int64, res protocol.JobResult) error {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.results = append(r.results, res)
				return nil
			}}
			r.e = newEnv(t, sink, func(o *hub.Options) {
				o.LogFlushEvery = 20 * time.Millisecond
				// A HELLO of megabytes, written and decoded under the race detector on a loaded
				// machine, can take longer than the 10 s a real agent gets; this test is about
				// bounds, not that deadline (TestHandshake_SilentClientClosedAfterHelloTimeout is).
				o.HelloTimeout = 2 * time.Minute
			})
			agent, token := r.e.newAgent("box")
			other, _ := r.e.newAgent("other")
			r.agentID, r.foreign = agent.ID, r.e.newDeployment(other.ID)
			hello := helloV1()
			if tc.hello != nil {
				hello = tc.hello()
			}
			c, _, err := r.e.dial(token)
			if err != nil {
				t.Fatal(err)
			}
			send(t, c, protocol.TypeHello, hello)
			eventually(t, "agent connected", func() bool { return r.e.hub.Online(agent.ID) && r.e.agentRow(agent.ID).Status == "online" })
			r.own = r.e.newDeployment(agent.ID)
			if err := r.e.hub.Dispatch(r.e.ctx, agent.ID, protocol.Deploy{JobID: r.own}); err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			if tc.frames != nil {
				frames = tc.frames(r)
			}
			before := heapAlloc()
			writeAll(c, frames)
			if tc.closed != "" {
				if ce := closeOf(t, c); ce.Code != websocket.StatusInvalidFramePayloadData || ce.Reason != tc.closed {
					t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, websocket.StatusInvalidFramePayloadData, tc.closed)
				}
				r.e.waitStatus(agent.ID, "offline")
			} else {
				// Frames are handled in order: once the result of the foreign job is acked,
				// every frame before it was handled (and the foreign job's lines flushed).
				send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: r.foreign, Status: protocol.StatusSuccess})
				untilAck(t, c, r.foreign)
			}
			tc.check(t, r)
			after := heapAlloc()
			runtime.KeepAlive(frames)
			if after > before && after-before > 4<<20 {
				t.Fatalf("the hub kept %d MiB after frames of %d MiB", (after-before)>>20, size(frames)>>20)
			}
		})
	}
}

func size(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

func TestAgentFrames_AConnectionIsPacedNotDropped(t *testing.T) {
	t.Parallel()
	const every = 100 * time.Millisecond
	e := newEnv(t, nil, func(o *hub.Options) { o.FrameRate = hub.Rate{Burst: 1, Every: every} })
	agent, c := e.connectNew("box")
	jobID := e.dispatch(agent.ID, c)
	phases := []string{protocol.PhaseFetching, protocol.PhaseBuilding, protocol.PhasePreDeploy, protocol.PhaseDeploying, protocol.PhaseVerifying}
	start := time.Now()
	for _, p := range phases {
		send(t, c, protocol.TypeJobPhase, protocol.JobPhase{JobID: jobID, Phase: p})
	}
	last := fmt.Sprintf("JobPhase %d %s %s", agent.ID, jobID, phases[len(phases)-1])
	eventually(t, "every phase handled", func() bool { return e.sink.has(last) })
	// One frame at once, then one per interval: five frames cannot be handled in less than
	// four intervals, however fast they were written. (A lower bound: a loaded machine only
	// makes it longer.)
	if took := time.Since(start); took < time.Duration(len(phases)-1)*every {
		t.Fatalf("%d frames handled in %s, want at least %s", len(phases), took, time.Duration(len(phases)-1)*every)
	}
	var got []string
	for _, ev := range e.sink.Events() {
		if strings.HasPrefix(ev, "JobPhase") {
			got = append(got, ev[strings.LastIndex(ev, " ")+1:])
		}
	}
	if strings.Join(got, ",") != strings.Join(phases, ",") {
		t.Fatalf("phases handled %v, want %v in order", got, phases)
	}
	if !e.hub.Online(agent.ID) {
		t.Fatal("pacing closed the connection")
	}
}

func TestAgentFrames_AJobDispatchedByAnEarlierServerProcessIsTheAgents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.LogFlushEvery = 20 * time.Millisecond })
	agent, c := e.connectNew("box")
	// Dispatched to this agent according to the database, not by this hub: the server
	// restarted while the agent held the job.
	jobID := e.newDeployment(agent.ID)
	send(t, c, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: jobID})
	send(t, c, protocol.TypeLogChunk, protocol.LogChunk{JobID: jobID, Seq: 1, Stream: protocol.StreamStdout, Line: "building", TS: time.Now()})
	eventually(t, "JOB_ACCEPTED passed on", func() bool { return e.sink.has(fmt.Sprintf("JobAccepted %d %s", agent.ID, jobID)) })
	e.waitStatus(agent.ID, "busy")
	e.flushed(t, jobID, 1)
	if strings.Contains(e.logs.String(), "dropped") {
		t.Fatalf("a report of the agent's own job was dropped:\n%s", e.logs.String())
	}
}

func TestAgentFrames_TooManyUnknownJobsAreDroppedWithoutAWarningEach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, c := e.connectNew("box")
	for i := range 200 {
		send(t, c, protocol.TypeJobPhase, protocol.JobPhase{JobID: fmt.Sprintf("job-%d", i), Phase: protocol.PhaseBuilding})
	}
	send(t, c, protocol.TypeJobResult, protocol.JobResult{JobID: "job-x", Status: protocol.StatusSuccess})
	untilAck(t, c, "job-x")
	if n := strings.Count(e.logs.String(), "job id is not a deployment id"); n < 1 || n > 20 {
		t.Fatalf("%d warnings for 200 unknown jobs, want a few (at most 20):\n%s", n, e.logs.String())
	}
	for _, ev := range e.sink.Events() {
		if strings.HasPrefix(ev, "JobPhase") {
			t.Fatalf("sink got %q for a job not dispatched to this agent", ev)
		}
	}
	if a := e.agentRow(agent.ID); a.Status != "online" {
		t.Fatalf("status %s after reports of unknown jobs, want online (none is in flight)", a.Status)
	}
}
