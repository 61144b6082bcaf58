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
//
// A written log line is kept in sent until the server confirms it (LOG_ACK, or the job's
// RESULT_ACK): a line written into a connection that was already dead, or that the
// server could not store, goes out again after the next HELLO (rewind).
type outbox struct {
	mu    sync.Mutex
	items []*item
	// sent holds written log lines (and drop notices) not confirmed yet, in write order.
	sent     []*item
	maxLines int
	maxBytes int
	// lines and bytes count the log lines in items and sent.
	lines   int
	bytes   int
	nextSeq map[string]int64
	// acked is the highest seq the server confirmed, per job.
	acked  map[string]int64
	notify chan struct{}
	// empty is closed and replaced whenever the queue drains and every line is confirmed,
	// for shutdown's flush.
	empty chan struct{}
}

func newOutbox(maxLines, maxBytes int) *outbox {
	e := make(chan struct{})
	close(e)
	return &outbox{
		maxLines: maxLines,
		maxBytes: maxBytes,
		nextSeq:  map[string]int64{},
		acked:    map[string]int64{},
		notify:   make(chan struct{}, 1),
		empty:    e,
	}
}

func (o *outbox) pushLocked(it *item) {
	o.fillingLocked()
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
		if !o.dropOldestLocked() && !o.forgetOldestSentLocked() {
			break
		}
	}
}

// forgetOldestSentLocked forgets the oldest written line the server has not confirmed,
// once the bound leaves no unsent line to drop: it most likely reached the server, and
// resending it is not worth more memory.
func (o *outbox) forgetOldestSentLocked() bool {
	for i, it := range o.sent {
		if it.kind != kindLog {
			continue
		}
		o.sent = append(o.sent[:i], o.sent[i+1:]...)
		o.lines--
		o.bytes -= it.size
		o.emptiedLocked()
		return true
	}
	return false
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

// pop removes the head once it has been written; a log line waits in sent for the
// server's confirmation.
func (o *outbox) pop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) == 0 {
		return
	}
	it := o.items[0]
	o.items[0] = nil
	o.items = o.items[1:]
	switch {
	case it.kind == kindLog || it.kind == kindDropped:
		switch acked := o.acked[it.jobID]; {
		case it.seq > acked:
			o.sent = append(o.sent, it)
		case acked == allLines:
			o.forgetLocked(it)
			delete(o.acked, it.jobID)
		default:
			o.forgetLocked(it)
		}
	case it.kind == kindResult:
		// The result is the job's last frame: its numbering is finished.
		delete(o.nextSeq, it.jobID)
	}
	if len(o.items) == 0 {
		o.items = nil
	}
	o.emptiedLocked()
}

// forgetLocked uncounts a log line leaving the outbox.
func (o *outbox) forgetLocked(it *item) {
	if it.kind == kindLog {
		o.lines--
		o.bytes -= it.size
	}
}

// fillingLocked notes the outbox is no longer drained.
func (o *outbox) fillingLocked() {
	if len(o.items) == 0 && len(o.sent) == 0 {
		o.empty = make(chan struct{})
	}
}

// emptiedLocked signals the drain once nothing waits to be written or confirmed.
func (o *outbox) emptiedLocked() {
	if len(o.items) > 0 || len(o.sent) > 0 {
		return
	}
	select {
	case <-o.empty:
	default:
		close(o.empty)
	}
}

// ack records the server's confirmation of the job's lines up to seq and forgets them.
// The head may be on the wire and stays; pop forgets it once written.
func (o *outbox) ack(jobID string, seq int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq <= o.acked[jobID] {
		return
	}
	o.acked[jobID] = seq
	o.sent = o.dropLinesLocked(o.sent, jobID, seq, 0)
	o.items = o.dropLinesLocked(o.items, jobID, seq, 1)
	o.emptiedLocked()
}

// dropLinesLocked removes from list, past its first keep items, the numbered lines of the
// job up to seq.
func (o *outbox) dropLinesLocked(list []*item, jobID string, seq int64, keep int) []*item {
	return filterItems(list, func(i int, it *item) bool {
		numbered := (it.kind == kindLog || it.kind == kindDropped) && it.seq != 0
		if i >= keep && numbered && it.jobID == jobID && it.seq <= seq {
			o.forgetLocked(it)
			return true
		}
		return false
	})
}

// filterItems removes in place the items drop picks, given each item's index in list, and
// clears the freed tail so the removed items can be collected; an empty result is nil.
func filterItems(list []*item, drop func(i int, it *item) bool) []*item {
	out := list[:0]
	for i, it := range list {
		if !drop(i, it) {
			out = append(out, it)
		}
	}
	for i := len(out); i < len(list); i++ {
		list[i] = nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// rewind puts every line written but not confirmed back at the front of the queue, in
// the order it was written, for a new connection: the old one may have lost it. Their
// seq stays, and the server ignores a line it has stored already.
func (o *outbox) rewind() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sent) == 0 {
		return
	}
	o.items = append(o.sent, o.items...)
	o.sent = nil
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// startSeq makes the job's next line number base+1, unless it is past that already.
func (o *outbox) startSeq(jobID string, base int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nextSeq[jobID] < base {
		o.nextSeq[jobID] = base
	}
}

// hasLines reports whether lines of the job wait to be written or confirmed.
func (o *outbox) hasLines(jobID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, list := range [][]*item{o.sent, o.items} {
		for _, it := range list {
			if (it.kind == kindLog || it.kind == kindDropped) && it.jobID == jobID {
				return true
			}
		}
	}
	return false
}

// resultQueued lists the jobs whose results wait in the queue.
func (o *outbox) resultsQueued() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for _, it := range o.items {
		if it.kind == kindResult {
			ids = append(ids, it.jobID)
		}
	}
	return ids
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
	o.items = filterItems(o.items, func(_ int, it *item) bool {
		if it.kind == kindResult && !pending[it.jobID] {
			taken = append(taken, it.payload.(protocol.JobResult))
			delete(o.nextSeq, it.jobID)
			return true
		}
		pending[it.jobID] = true
		return false
	})
	o.emptiedLocked()
	return taken
}

// dropResult removes a queued result the server has already acknowledged, and the job's
// lines: the server stores a job's lines before it acknowledges its result.
func (o *outbox) dropResult(jobID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = filterItems(o.items, func(i int, it *item) bool {
		// The head may be in flight; the server ignores a repeated frame anyway.
		done := it.kind == kindResult || it.kind == kindLog || it.kind == kindDropped
		if i > 0 && done && it.jobID == jobID {
			o.forgetLocked(it)
			return true
		}
		return false
	})
	o.sent = o.dropLinesLocked(o.sent, jobID, allLines, 0)
	// A line of the job on the wire right now is forgotten when popped; after that nothing
	// of the job is left to remember.
	if len(o.items) > 0 && o.items[0].jobID == jobID && o.items[0].kind != kindFrame {
		o.acked[jobID] = allLines
	} else {
		delete(o.acked, jobID)
	}
	o.emptiedLocked()
}

// allLines is a seq above any line's: confirming it confirms the whole job.
const allLines = int64(1) << 62

// requeueResult queues a journaled result behind the job's lines still waiting to be
// written or confirmed, unless it is queued already.
func (o *outbox) requeueResult(r protocol.JobResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range o.items {
		if it.kind == kindResult && it.jobID == r.JobID {
			return
		}
	}
	o.pushLocked(&item{kind: kindResult, jobID: r.JobID, typ: protocol.TypeJobResult, payload: r})
}

// emptied returns a channel closed when nothing waits to be written or confirmed.
func (o *outbox) emptied() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.empty
}
