package conn

import (
	"fmt"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// itemKind orders what the outbox carries; only log lines may be dropped.
type itemKind int

const (
	kindFrame   itemKind = iota // JOB_ACCEPTED, JOB_PHASE: small, never dropped
	kindLog                     // one log line, numbered when first sent
	kindDropped                 // stands in for a run of dropped log lines of one job
	kindResult                  // JOB_RESULT, after the job's last log line
)

// item is one queued frame. Log lines get their seq the first time the writer picks
// them up, so lines dropped before that leave no gap in the numbering.
type item struct {
	kind    itemKind
	jobID   string
	typ     string
	payload any
	stream  string
	line    string
	ts      time.Time
	dropped int
	seq     int64
	size    int
}

// outbox is the ordered queue of frames for the server. It outlives connections: the
// writer of each connection takes from its head, and an item leaves only once written,
// so lines produced while disconnected go out, in order, after the next HELLO.
type outbox struct {
	mu       sync.Mutex
	items    []*item
	maxLines int
	maxBytes int
	lines    int
	bytes    int
	nextSeq  map[string]int64
	notify   chan struct{}
	// empty is closed and replaced whenever the queue drains, for shutdown's flush.
	empty chan struct{}
}

func newOutbox(maxLines, maxBytes int) *outbox {
	e := make(chan struct{})
	close(e)
	return &outbox{
		maxLines: maxLines,
		maxBytes: maxBytes,
		nextSeq:  map[string]int64{},
		notify:   make(chan struct{}, 1),
		empty:    e,
	}
}

func (o *outbox) pushLocked(it *item) {
	if len(o.items) == 0 {
		o.empty = make(chan struct{})
	}
	o.items = append(o.items, it)
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// frame queues a frame that is never dropped.
func (o *outbox) frame(jobID, typ string, payload any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pushLocked(&item{kind: kindFrame, jobID: jobID, typ: typ, payload: payload})
}

// result queues a job's JOB_RESULT behind its log lines.
func (o *outbox) result(r protocol.JobResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pushLocked(&item{kind: kindResult, jobID: r.JobID, typ: protocol.TypeJobResult, payload: r})
}

// log queues one line, dropping the oldest unsent lines past the bound.
func (o *outbox) log(jobID, stream, line string, ts time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	it := &item{kind: kindLog, jobID: jobID, stream: stream, line: line, ts: ts, size: len(line)}
	o.pushLocked(it)
	o.lines++
	o.bytes += it.size
	for o.lines > o.maxLines || o.bytes > o.maxBytes {
		if !o.dropOldestLocked() {
			break
		}
	}
}

// dropOldestLocked replaces the oldest line not yet numbered with a drop marker, or
// folds it into the marker just before it, so a run of drops becomes one system line.
func (o *outbox) dropOldestLocked() bool {
	for i, it := range o.items {
		if it.kind != kindLog || it.seq != 0 {
			continue
		}
		o.lines--
		o.bytes -= it.size
		if i > 0 {
			// A marker already numbered may be on the wire: start a new one instead.
			if prev := o.items[i-1]; prev.kind == kindDropped && prev.jobID == it.jobID && prev.seq == 0 {
				prev.dropped++
				o.items = append(o.items[:i], o.items[i+1:]...)
				return true
			}
		}
		o.items[i] = &item{kind: kindDropped, jobID: it.jobID, ts: it.ts, dropped: 1}
		return true
	}
	return false
}

// head returns the frame to write next, numbering log lines on first sight.
func (o *outbox) head() (typ string, payload any, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) == 0 {
		return "", nil, false
	}
	it := o.items[0]
	switch it.kind {
	case kindLog, kindDropped:
		if it.seq == 0 {
			o.nextSeq[it.jobID]++
			it.seq = o.nextSeq[it.jobID]
		}
		line, stream := it.line, it.stream
		if it.kind == kindDropped {
			stream = protocol.StreamSystem
			line = fmt.Sprintf("stagely agent: %d log lines dropped while the server was unreachable (local queue full)", it.dropped)
		}
		return protocol.TypeLogChunk, protocol.LogChunk{JobID: it.jobID, Seq: it.seq, Stream: stream, Line: line, TS: it.ts}, true
	default:
		return it.typ, it.payload, true
	}
}

// pop removes the head once it has been written.
func (o *outbox) pop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) == 0 {
		return
	}
	it := o.items[0]
	o.items[0] = nil
	o.items = o.items[1:]
	if it.kind == kindLog {
		o.lines--
		o.bytes -= it.size
	}
	if it.kind == kindResult {
		// The result is the job's last frame: its numbering is finished.
		delete(o.nextSeq, it.jobID)
	}
	if len(o.items) == 0 {
		o.items = nil
		close(o.empty)
	}
}

// hasResult reports whether a job's result is still waiting in the queue.
func (o *outbox) hasResult(jobID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range o.items {
		if it.kind == kindResult && it.jobID == jobID {
			return true
		}
	}
	return false
}

// takeReadyResults removes and returns the queued results with nothing of their job
// queued ahead of them: those can ride in HELLO. A result still behind its job's log
// lines stays queued, so the server gets the lines before the outcome.
func (o *outbox) takeReadyResults() []protocol.JobResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	var taken []protocol.JobResult
	pending := map[string]bool{}
	kept := o.items[:0]
	for _, it := range o.items {
		if it.kind == kindResult && !pending[it.jobID] {
			taken = append(taken, it.payload.(protocol.JobResult))
			delete(o.nextSeq, it.jobID)
			continue
		}
		pending[it.jobID] = true
		kept = append(kept, it)
	}
	for i := len(kept); i < len(o.items); i++ {
		o.items[i] = nil
	}
	o.items = kept
	if len(o.items) == 0 && len(taken) > 0 {
		o.items = nil
		close(o.empty)
	}
	return taken
}

// dropResult removes a queued result the server has already acknowledged.
func (o *outbox) dropResult(jobID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, it := range o.items {
		// The head may be in flight; the server ignores a repeated result anyway.
		if i > 0 && it.kind == kindResult && it.jobID == jobID {
			o.items = append(o.items[:i], o.items[i+1:]...)
			return
		}
	}
}

// emptied returns a channel closed when the queue is empty.
func (o *outbox) emptied() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.empty
}
