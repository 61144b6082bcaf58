package hub

import (
	"context"
	"strconv"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// What one agent connection may send: every field bounded (protocol's limits), frames
// paced, and reports accepted only for jobs dispatched to that agent. A token holder can
// then neither pin the server's memory nor fill its database nor its log.

const (
	// jobLookupTimeout bounds the one store read that tells whether a job this process did
	// not dispatch belongs to the agent.
	jobLookupTimeout = 5 * time.Second
	// maxUnknownJobs is how many job ids not dispatched to the agent one connection may name
	// (each costs a store read and a warning); frames of further ones are dropped unread and
	// counted only. A real agent names none.
	maxUnknownJobs = 16
	// maxKnownJobs bounds the per-connection memory of jobs found dispatched to the agent.
	maxKnownJobs = 1024
)

// frameGate is a connection's record of what it let through and what it dropped. Two
// goroutines share it, each field owned by one of them and left unlocked: pace and clipped
// belong to the connection's reader (pace, decode); the rest to the agent's worker (admit,
// ownJob, lookupJob, withinLimit, reportOverLimit), which reads clipped too, in
// reportDropped at teardown, once the reader has ended.
type frameGate struct {
	// Reader's: the frame rate's token bucket, and how many frames had fields cut.
	pace    bucket
	clipped int

	// Worker's from here on.
	// jobs caches, per job id this process did not dispatch, whether it is the agent's.
	jobs    map[string]bool
	unknown int
	// lookupFailed is set once a failed store read was logged.
	lookupFailed bool
	// dropped counts frames of jobs not dispatched to the agent; overLimit counts each
	// job's lines past protocol.MaxJobLogLines.
	dropped   int
	overLimit map[string]int
}

// decode decodes, validates and bounds one frame: an identifier out of bounds is an
// error carrying protocol.CloseReasonBadFrame, text is truncated.
func (c *conn) decode(data []byte) (string, any, error) {
	typ, v, err := protocol.Decode(data)
	if err != nil {
		return typ, v, err
	}
	if err := protocol.Validate(v); err != nil {
		return typ, nil, err
	}
	var cut bool
	switch p := v.(type) {
	case *protocol.Hello:
		cut = p.Clip()
	case *protocol.LogChunk:
		cut = p.Clip()
	case *protocol.JobPhase:
		cut = p.Clip()
	case *protocol.JobResult:
		cut = p.Clip()
	case *protocol.UpdateFailed:
		cut = p.Clip()
	}
	if cut {
		if c.gate.clipped == 0 {
			c.log.Warn("agent frame fields over their bounds were truncated", "type", typ)
		}
		c.gate.clipped++
	}
	return typ, v, nil
}

// pace waits until the connection may have its next frame handled: a token bucket of
// Options.FrameRate. Past it the hub reads more slowly, and TCP holds the agent's writes
// back; nothing is dropped. false means the connection ended while waiting.
func (c *conn) pace() bool {
	r := c.hub.opts.FrameRate
	g := &c.gate
	now := time.Now()
	if g.pace.last.IsZero() {
		g.pace = bucket{tokens: float64(r.Burst), last: now}
	}
	if wait := g.pace.wait(r, now); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return false
		}
		now = time.Now()
	}
	g.pace.spend(r, now)
	return true
}

// admit reports whether a decoded frame is handled. Reports on a job not dispatched to this
// agent (JOB_ACCEPTED, JOB_PHASE, LOG_CHUNK) are dropped and counted, and never buffered;
// lines past a job's limit too, the first of them becoming protocol.LogTruncatedLine.
// Results always pass: the sink checks whose job it is and acknowledges them either way,
// so the agent stops repeating them.
func (c *conn) admit(v any) bool {
	switch p := v.(type) {
	case *protocol.JobAccepted:
		return c.ownJob(p.JobID)
	case *protocol.JobPhase:
		return c.ownJob(p.JobID)
	case *protocol.LogChunk:
		return c.ownJob(p.JobID) && c.withinLimit(p)
	case *protocol.JobResult:
		c.reportOverLimit(p.JobID)
	}
	return true
}

// ownJob reports whether the job was dispatched to this agent: by this process, or, for a
// job this process has not dispatched (the server restarted while the agent held it), by
// its deployment row. A frame of another job is dropped and counted.
func (c *conn) ownJob(jobID string) bool {
	h := c.hub
	h.mu.Lock()
	_, inFlight := c.st.jobs[jobID]
	h.mu.Unlock()
	if inFlight {
		return true
	}
	own, known := c.gate.jobs[jobID]
	if !known {
		var answered bool
		if own, answered = c.lookupJob(jobID); !answered {
			return true
		}
	}
	if !own {
		c.gate.dropped++
	}
	return own
}

// lookupJob asks the store whose job this is, at most once per job and connection. A
// store that cannot answer (answered false) lets the frame through: the store and the sink
// check the agent again, and a line is never lost to a database blip.
func (c *conn) lookupJob(jobID string) (own, answered bool) {
	g := &c.gate
	id, err := strconv.ParseInt(jobID, 10, 64)
	switch {
	case err != nil || id <= 0:
		c.unknownJob(jobID, "agent report dropped: job id is not a deployment id")
		return false, true
	case g.unknown >= maxUnknownJobs:
		return false, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobLookupTimeout)
	d, err := c.hub.opts.Store.DeploymentByID(ctx, id)
	cancel()
	if err != nil && !store.IsNotFound(err) {
		if !g.lookupFailed {
			g.lookupFailed = true
			c.log.Warn("cannot tell whose job this is; passing its reports on", "job_id", jobID, "err", err)
		}
		return false, false
	}
	if err == nil && d.AgentID.Valid && d.AgentID.Int64 == c.agentID {
		if g.jobs == nil {
			g.jobs = map[string]bool{}
		}
		if len(g.jobs) < maxKnownJobs {
			g.jobs[jobID] = true
		}
		return true, true
	}
	c.unknownJob(jobID, "agent report dropped: job not dispatched to this agent")
	return false, true
}

// unknownJob remembers a job that is not the agent's, and logs it (its id, never a frame's
// content), for the first maxUnknownJobs of them.
func (c *conn) unknownJob(jobID, warning string) {
	g := &c.gate
	if g.unknown++; g.unknown > maxUnknownJobs {
		return
	}
	if g.jobs == nil {
		g.jobs = map[string]bool{}
	}
	g.jobs[jobID] = false
	c.log.Warn(warning, "job_id", jobID)
	if g.unknown == maxUnknownJobs {
		c.log.Warn("agent named too many jobs not dispatched to it; frames of others are dropped without a warning", "jobs", g.unknown)
	}
}

// withinLimit applies protocol.MaxJobLogLines: the next line becomes the marker, and lines
// past it are dropped and counted (logged with the job's result or at disconnect).
func (c *conn) withinLimit(l *protocol.LogChunk) bool {
	switch {
	case l.Seq <= protocol.MaxJobLogLines:
		return true
	case l.Seq == protocol.MaxJobLogLines+1:
		l.Stream, l.Line = protocol.StreamSystem, protocol.LogTruncatedLine
		return true
	}
	g := &c.gate
	if g.overLimit == nil {
		g.overLimit = map[string]int{}
	}
	if _, seen := g.overLimit[l.JobID]; !seen && len(g.overLimit) >= maxKnownJobs {
		g.dropped++
		return false
	}
	g.overLimit[l.JobID]++
	return false
}

// reportOverLimit logs how many of the job's lines were past its limit, once.
func (c *conn) reportOverLimit(jobID string) {
	g := &c.gate
	if n, ok := g.overLimit[jobID]; ok {
		c.log.Warn("job log lines past the limit dropped", "job_id", jobID, "limit", protocol.MaxJobLogLines, "dropped", n)
		delete(g.overLimit, jobID)
	}
}

// reportDropped logs, when the connection ends, what the gate dropped or cut.
func (c *conn) reportDropped() {
	g := &c.gate
	for jobID := range g.overLimit {
		c.reportOverLimit(jobID)
	}
	if g.dropped > 0 || g.clipped > 0 {
		c.log.Warn("agent frames dropped or truncated on this connection", "dropped", g.dropped, "truncated", g.clipped)
	}
}
