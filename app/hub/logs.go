package hub

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// logWriteTimeout bounds one batch write; it is not tied to the connection, so lines that
// arrived before a disconnect are still stored after it.
const logWriteTimeout = 10 * time.Second

// logBuffer collects a connection's LOG_CHUNKs per job and writes them in batches: when a
// job has LogBatchSize lines waiting, or LogFlushEvery after the first waiting line,
// whichever comes first. One timer per connection, armed only while lines wait.
type logBuffer struct {
	c *conn

	// flushMu lets one flush run at a time, so a job's batches reach the store and the
	// sink in arrival order.
	flushMu sync.Mutex

	mu      sync.Mutex
	pending map[string][]protocol.LogChunk
	timer   *time.Timer
	armed   bool
	closed  bool
	warned  map[string]bool
}

func newLogBuffer(c *conn) *logBuffer {
	return &logBuffer{c: c}
}

// add buffers one line; it writes the job's batch at once when it is full.
func (b *logBuffer) add(l protocol.LogChunk) {
	opts := b.c.hub.opts
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if b.pending == nil {
		b.pending = map[string][]protocol.LogChunk{}
	}
	b.pending[l.JobID] = append(b.pending[l.JobID], l)
	full := len(b.pending[l.JobID]) >= opts.LogBatchSize
	if !full && !b.armed {
		b.armed = true
		if b.timer == nil {
			b.timer = time.AfterFunc(opts.LogFlushEvery, b.flushAll)
		} else {
			b.timer.Reset(opts.LogFlushEvery)
		}
	}
	b.mu.Unlock()
	if full {
		b.flushJob(l.JobID)
	}
}

// flushJob writes the job's waiting lines now.
func (b *logBuffer) flushJob(jobID string) {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	lines := b.pending[jobID]
	delete(b.pending, jobID)
	b.mu.Unlock()
	b.write(jobID, lines)
}

// flushAll writes every waiting line; it is the timer's callback.
func (b *logBuffer) flushAll() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	b.armed = false
	if b.closed {
		b.mu.Unlock()
		return
	}
	all := b.pending
	b.pending = nil
	b.mu.Unlock()
	for jobID, lines := range all {
		b.write(jobID, lines)
	}
}

// close writes what is left and stops the timer; a timer firing later finds nothing to do.
func (b *logBuffer) close() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	all := b.pending
	b.pending = nil
	b.mu.Unlock()
	for jobID, lines := range all {
		b.write(jobID, lines)
	}
}

// write stores lines of one job. The job id is the deployment
// id in decimal; lines of any other job id, or that the table would refuse, are dropped
// with one warning per job, so one bad line does not sink its whole batch.
func (b *logBuffer) write(jobID string, lines []protocol.LogChunk) {
	if len(lines) == 0 {
		return
	}
	c := b.c
	opts := c.hub.opts
	deploymentID, err := strconv.ParseInt(jobID, 10, 64)
	if err != nil || deploymentID <= 0 {
		b.warnOnce(jobID, "log lines dropped: job id is not a deployment id", len(lines))
		return
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
	ctx, cancel := context.WithTimeout(context.Background(), logWriteTimeout)
	defer cancel()
	for start := 0; start < len(rows); start += opts.LogBatchSize {
		end := min(start+opts.LogBatchSize, len(rows))
		if err := opts.Store.AppendAgentLogs(ctx, deploymentID, c.agentID, rows[start:end]); err != nil {
			c.log.Warn("store job log lines", "job_id", jobID, "lines", end-start, "err", err)
		}
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
	b.mu.Lock()
	if b.warned == nil {
		b.warned = map[string]bool{}
	}
	seen := b.warned[jobID]
	b.warned[jobID] = true
	b.mu.Unlock()
	if !seen {
		b.c.log.Warn(msg, "job_id", jobID, "lines", n)
	}
}
