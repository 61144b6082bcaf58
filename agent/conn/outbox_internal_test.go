package conn

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// drainAll writes (pops) every queued frame and returns them.
func drainAll(o *outbox) []any {
	var out []any
	for {
		_, p, ok := o.head()
		if !ok {
			return out
		}
		out = append(out, p)
		o.pop()
	}
}

func TestOutbox_SeqGapFreeFromOnePerJob(t *testing.T) {
	t.Parallel()
	o := newOutbox(100, 1<<20)
	o.frame("a", protocol.TypeJobAccepted, protocol.JobAccepted{JobID: "a"})
	for _, l := range []string{"one", "two", "three"} {
		o.log("a", protocol.StreamStdout, l, time.Now())
	}
	o.result(protocol.JobResult{JobID: "a", Status: protocol.StatusSuccess})
	o.log("b", protocol.StreamStdout, "b-one", time.Now())
	var seqs []int64
	var jobs []string
	var sawResult bool
	for _, p := range drainAll(o) {
		switch v := p.(type) {
		case protocol.LogChunk:
			if sawResult && v.JobID == "a" {
				t.Fatal("log line of job a after its result")
			}
			seqs = append(seqs, v.Seq)
			jobs = append(jobs, v.JobID)
		case protocol.JobResult:
			sawResult = true
		}
	}
	if got := [4]int64(seqs); got != [4]int64{1, 2, 3, 1} {
		t.Fatalf("seqs = %v (jobs %v), want 1 2 3 for a then 1 for b", seqs, jobs)
	}
}

func TestOutbox_FullQueueDropsOldestAndSaysHowMany(t *testing.T) {
	t.Parallel()
	o := newOutbox(3, 1<<20)
	o.frame("a", protocol.TypeJobAccepted, protocol.JobAccepted{JobID: "a"})
	for i := range 10 {
		o.log("a", protocol.StreamStdout, string(rune('0'+i)), time.Now())
	}
	frames := drainAll(o)
	if _, ok := frames[0].(protocol.JobAccepted); !ok {
		t.Fatalf("first frame = %T, want JOB_ACCEPTED (never dropped)", frames[0])
	}
	var lines []string
	for i, p := range frames[1:] {
		c := p.(protocol.LogChunk)
		if c.Seq != int64(i+1) {
			t.Fatalf("chunk %d has seq %d, want %d", i, c.Seq, i+1)
		}
		lines = append(lines, c.Stream+":"+c.Line)
	}
	if len(lines) != 4 {
		t.Fatalf("got %d chunks %v, want a drop notice and the 3 newest lines", len(lines), lines)
	}
	if !strings.HasPrefix(lines[0], "system:") || !strings.Contains(lines[0], "7 log lines dropped") {
		t.Fatalf("first chunk = %q, want a system line saying 7 lines were dropped", lines[0])
	}
	if got := strings.Join(lines[1:], ","); got != "stdout:7,stdout:8,stdout:9" {
		t.Fatalf("kept lines = %s, want the newest three", got)
	}
}

func TestOutbox_InFlightHeadIsNeverDropped(t *testing.T) {
	t.Parallel()
	o := newOutbox(2, 1<<20)
	o.log("a", protocol.StreamStdout, "first", time.Now())
	_, p, _ := o.head() // numbered: now on the wire
	o.log("a", protocol.StreamStdout, "second", time.Now())
	o.log("a", protocol.StreamStdout, "third", time.Now())
	_, again, _ := o.head()
	if again.(protocol.LogChunk) != p.(protocol.LogChunk) {
		t.Fatalf("head changed while in flight: %+v then %+v", p, again)
	}
	o.pop()
	rest := drainAll(o)
	if len(rest) != 2 {
		t.Fatalf("after the in-flight line got %d frames, want a drop notice and the newest line", len(rest))
	}
	if c := rest[0].(protocol.LogChunk); c.Seq != 2 || !strings.Contains(c.Line, "1 log lines dropped") {
		t.Fatalf("frame = %+v, want drop notice with seq 2", c)
	}
	if c := rest[1].(protocol.LogChunk); c.Seq != 3 || c.Line != "third" {
		t.Fatalf("frame = %+v, want the newest line with seq 3", c)
	}
}

func TestOutbox_ByteBoundDropsToo(t *testing.T) {
	t.Parallel()
	o := newOutbox(1000, 10)
	o.log("a", protocol.StreamStdout, "0123456789", time.Now())
	o.log("a", protocol.StreamStdout, "abcdefghij", time.Now())
	frames := drainAll(o)
	if len(frames) != 2 || !strings.Contains(frames[0].(protocol.LogChunk).Line, "1 log lines dropped") {
		t.Fatalf("frames = %+v, want a drop notice then the newest line", frames)
	}
}

func TestOutbox_EmptiedSignalsDrain(t *testing.T) {
	t.Parallel()
	o := newOutbox(10, 1<<20)
	select {
	case <-o.emptied():
	default:
		t.Fatal("new outbox not reported empty")
	}
	o.frame("a", protocol.TypeJobAccepted, protocol.JobAccepted{JobID: "a"})
	ch := o.emptied()
	select {
	case <-ch:
		t.Fatal("outbox with a frame reported empty")
	default:
	}
	o.pop()
	select {
	case <-ch:
	default:
		t.Fatal("drained outbox not reported empty")
	}
}

func TestBackoff_FullJitterCappedWithFloor(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Max: 60 * time.Second}
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first retry ceiling is base", b, 0, 0.5, 500 * time.Millisecond},
		{"ceiling doubles per attempt", b, 3, 0.5, 4 * time.Second},
		{"ceiling capped", b, 30, 0.5, 30 * time.Second},
		{"zero draw gives zero wait", b, 5, 0, 0},
		{"refused floor applies under the jitter", Backoff{Base: 5 * time.Minute, Max: 10 * time.Minute, Min: 4 * time.Minute}, 0, 0, 4 * time.Minute},
		{"refused ceiling capped", Backoff{Base: 5 * time.Minute, Max: 10 * time.Minute, Min: 4 * time.Minute}, 9, 0.5, 7 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.b.Delay(tt.attempt, tt.rnd); got != tt.want {
				t.Fatalf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
	for attempt := range 40 {
		if d := b.Delay(attempt, 0.999999); d > b.Max {
			t.Fatalf("Delay(%d) = %v exceeds the cap %v", attempt, d, b.Max)
		}
	}
}

func TestOutbox_WrittenLinesKeptUntilConfirmedAndRewoundInOrder(t *testing.T) {
	t.Parallel()
	o := newOutbox(100, 1<<20)
	for _, l := range []string{"one", "two", "three"} {
		o.log("a", protocol.StreamStdout, l, time.Now())
	}
	if n := len(drainAll(o)); n != 3 {
		t.Fatalf("wrote %d frames, want 3", n)
	}
	select {
	case <-o.emptied():
		t.Fatal("outbox drained while no line is confirmed")
	default:
	}
	o.ack("a", 1)
	// A new connection: what was written but not confirmed goes out again, in order.
	o.rewind()
	o.log("a", protocol.StreamStdout, "four", time.Now())
	var got []string
	for _, p := range drainAll(o) {
		l := p.(protocol.LogChunk)
		got = append(got, fmt.Sprintf("%d:%s", l.Seq, l.Line))
	}
	if strings.Join(got, " ") != "2:two 3:three 4:four" {
		t.Fatalf("after rewind wrote %v, want 2:two 3:three 4:four", got)
	}
	o.ack("a", 4)
	select {
	case <-o.emptied():
	default:
		t.Fatal("outbox not drained once every line is confirmed")
	}
	if o.hasLines("a") {
		t.Fatal("confirmed lines still held")
	}
}
