package hub

import (
	"context"
	"strconv"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// logWriteTimeout bounds one batch write; it is not tied to the connection, so lines that
// arrived before a disconnect are still stored after it.
const logWriteTimeout = 10 * time.Second

// logBuffer collects a connection's LOG_CHUNKs per job and writes them in batches: when a
// job has LogBatchSize lines waiting, or LogFlushEvery after the first waiting line,
// whichever comes first. Everything but the timer runs on the agent's worker, one call at
// a time, so a job's batches reach the store in arrival order; the timer only queues a
// flush there. One timer per connection, armed only while lines wait.
type logBuffer struct {
	c *conn

	pending map[string][]protocol.LogChunk
	// skipped is the highest seq per job of lines dropped before the buffer (frames.go),
	// confirmed with the job's next flush: sending them again would not help.
	skipped map[string]int64
	timer   *time.Timer
	armed   bool
	closed  bool
	warned  map[string]bool
}

func newLogBuffer(c *conn) *logBuffer {
	return &logBuffer{c: c, pending: map[string][]protocol.LogChunk{}, skipped: map[string]int64{}, warned: map[string]bool{}}
}

// add buffers one line; it writes the job's batch at once when it is full.
func (b *logBuffer) add(l protocol.LogChunk) {
	if b.closed {
		return
	}
	b.pending[l.JobID] = append(b.pending[l.JobID], l)
	if len(b.pending[l.JobID]) >= b.c.hub.opts.LogBatchSize {
		b.flushJob(l.JobID)
		return
	}
	b.arm()
}

// skip notes a line dropped before the buffer, to be confirmed with the job's next flush.
func (b *logBuffer) skip(l protocol.LogChunk) {
	if b.closed {
		return
	}
	b.skipped[l.JobID] = max(b.skipped[l.JobID], l.Seq)
	b.arm()
}

func (b *logBuffer) arm() {
	if b.armed {
		return
	}
	b.armed = true
	if b.timer == nil {
		b.timer = time.AfterFunc(b.c.hub.opts.LogFlushEvery, func() { b.c.st.work.control(b.flushAll) })
	} else {
		b.timer.Reset(b.c.hub.opts.LogFlushEvery)
	}
}

// flushJob writes the job's waiting lines now; false means they could not be stored and
// the connection is closing.
func (b *logBuffer) flushJob(jobID string) bool {
	lines := b.pending[jobID]
	delete(b.pending, jobID)
	if !b.write(jobID, lines) {
		return false
	}
	if seq, ok := b.skipped[jobID]; ok {
		delete(b.skipped, jobID)
		b.ack(jobID, seq)
	}
	return true
}

// flushAll writes every waiting line; the timer queues it.
func (b *logBuffer) flushAll() {
	b.armed = false
	if b.closed {
		return
	}
	for jobID := range b.pending {
		if !b.flushJob(jobID) {
			return
		}
	}
	for jobID := range b.skipped {
		b.flushJob(jobID)
	}
}

// close writes what is left and stops the timer; a flush the timer queued later finds
// nothing to do.
func (b *logBuffer) close() {
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	for jobID, lines := range b.pending {
		delete(b.pending, jobID)
		b.write(jobID, lines)
	}
	for jobID, seq := range b.skipped {
		delete(b.skipped, jobID)
		b.ack(jobID, seq)
	}
}

// write stores lines of one job and confirms them to the agent (LOG_ACK). The job id is
// the deployment id in decimal; lines of any other job id, or that the table would refuse,
// are dropped with one warning per job, so one bad line does not sink its whole batch, and
// confirmed all the same: sending them again would not help. A write that keeps failing
// closes the connection (see persist), and the agent sends the lines again.
func (b *logBuffer) write(jobID string, lines []protocol.LogChunk) bool {
	if len(lines) == 0 {
		return true
	}
	c := b.c
	opts := c.hub.opts
	var last int64
	for _, l := range lines {
		last = max(last, l.Seq)
	}
	deploymentID, err := strconv.ParseInt(jobID, 10, 64)
	if err != nil || deploymentID <= 0 {
		b.warnOnce(jobID, "log lines dropped: job id is not a deployment id", len(lines))
		b.ack(jobID, last)
		return true
	}
	rows := make([]store.LogLine, 0, len(lines))
	for _, l := range lines {
		if l.Seq < 1 || !validStream(l.Stream) {
			b.warnOnce(jobID, "log line dropped: bad seq or stream", 1)
			continue
		}
		ts := l.TS
		if ts.IsZero() {
			ts = opts.Now()
		}
		rows = append(rows, store.LogLine{DeploymentID: deploymentID, Seq: l.Seq, Stream: l.Stream, Line: l.Line, TS: ts})
	}
	for start := 0; start < len(rows); start += opts.LogBatchSize {
		batch := rows[start:min(start+opts.LogBatchSize, len(rows))]
		stored := c.persist("store job log lines", jobID, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), logWriteTimeout)
			defer cancel()
			return opts.Store.AppendAgentLogs(ctx, deploymentID, c.agentID, batch)
		})
		if !stored {
			return false
		}
	}
	b.ack(jobID, last)
	return true
}

// ack confirms the job's lines up to seq to an agent that understands LOG_ACK.
func (b *logBuffer) ack(jobID string, seq int64) {
	c := b.c
	if c.protocol < 2 || seq < 1 {
		return
	}
	if err := c.send(protocol.TypeLogAck, protocol.LogAck{JobID: jobID, Seq: seq}); err != nil {
		c.log.Debug("log lines stored but not confirmed; the agent will send them again", "job_id", jobID, "err", err)
	}
}

func validStream(s string) bool {
	switch s {
	case protocol.StreamStdout, protocol.StreamStderr, protocol.StreamSystem:
		return true
	}
	return false
}

// warnOnce logs the first problem of each job only: an agent streaming thousands of bad
// lines must not flood the server's log.
func (b *logBuffer) warnOnce(jobID, msg string, n int) {
	if b.warned[jobID] {
		return
	}
	b.warned[jobID] = true
	b.c.log.Warn(msg, "job_id", jobID, "lines", n)
}
