package conn

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/protocol"
)

type submitResult int

const (
	submitAccepted submitResult = iota
	submitDuplicate
	submitFinished
	submitBusy
	submitDraining
)

type cancelResult int

const (
	cancelUnknown cancelResult = iota
	cancelRunning
	cancelQueued
)

// errCancelledByServer is the cause a job's context carries after CANCEL.
var errCancelledByServer = errors.New("cancelled by the server")

// jobQueue holds the running job and the deploys waiting behind it. Jobs run one at a
// time because they share the Docker engine and often the same compose project.
type jobQueue struct {
	mu        sync.Mutex
	max       int
	pending   []protocol.Deploy
	runningID string
	cancelRun context.CancelCauseFunc
	draining  bool
	wake      chan struct{}
}

func newJobQueue(max int) *jobQueue {
	return &jobQueue{max: max, wake: make(chan struct{}, 1)}
}

// submit queues a deploy unless it is a repeat, the queue is full or the agent is
// draining. finished is consulted under the queue's lock, see onDeploy.
func (q *jobQueue) submit(d protocol.Deploy, finished func(string) (protocol.JobResult, bool)) (submitResult, protocol.JobResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Finished first: the worker journals a result before it clears runningID, and a
	// journaled job must get its result again, not a JOB_ACCEPTED.
	if r, ok := finished(d.JobID); ok {
		return submitFinished, r
	}
	if q.runningID == d.JobID {
		return submitDuplicate, protocol.JobResult{}
	}
	for _, p := range q.pending {
		if p.JobID == d.JobID {
			return submitDuplicate, protocol.JobResult{}
		}
	}
	if q.draining {
		return submitDraining, protocol.JobResult{}
	}
	if len(q.pending) >= q.max {
		return submitBusy, protocol.JobResult{}
	}
	q.pending = append(q.pending, d)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return submitAccepted, protocol.JobResult{}
}

// next blocks for the next deploy and marks it running; false once draining or ctx ends.
func (q *jobQueue) next(ctx context.Context, cancel context.CancelCauseFunc) (protocol.Deploy, bool) {
	for {
		q.mu.Lock()
		if q.draining || ctx.Err() != nil {
			q.mu.Unlock()
			return protocol.Deploy{}, false
		}
		if len(q.pending) > 0 {
			d := q.pending[0]
			q.pending = q.pending[1:]
			q.runningID = d.JobID
			q.cancelRun = cancel
			q.mu.Unlock()
			return d, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
		}
	}
}

// done clears the running job; call it only after its result is journaled.
func (q *jobQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.runningID = ""
	q.cancelRun = nil
}

func (q *jobQueue) cancel(jobID string) cancelResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runningID == jobID && q.cancelRun != nil {
		q.cancelRun(errCancelledByServer)
		return cancelRunning
	}
	for i, p := range q.pending {
		if p.JobID == jobID {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return cancelQueued
		}
	}
	return cancelUnknown
}

// idle reports whether no job is running or queued.
func (q *jobQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.runningID == "" && len(q.pending) == 0
}

// holdIfIdle stops taking jobs, for good, if none is running or queued: the agent is about
// to restart into an update. Deploys that arrive later get the draining refusal.
func (q *jobQueue) holdIfIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runningID != "" || len(q.pending) > 0 || q.draining {
		return false
	}
	q.draining = true
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// drain stops taking jobs and returns the running job's id and the deploys that will
// not start.
func (q *jobQueue) drain() (string, []protocol.Deploy) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.draining = true
	refused := q.pending
	q.pending = nil
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return q.runningID, refused
}

// work runs queued deploys one by one until draining or ctx ends. The job context
// derives from ctx, not from any connection, so a job keeps running across reconnects.
func (c *Client) work(ctx context.Context) {
	for {
		jobCtx, cancel := context.WithCancelCause(ctx)
		d, ok := c.jobs.next(ctx, cancel)
		if !ok {
			cancel(nil)
			return
		}
		c.runJob(jobCtx, d)
		cancel(nil)
	}
}

func (c *Client) runJob(ctx context.Context, d protocol.Deploy) {
	log := c.log.With("job_id", d.JobID, "project", d.Project.Name, "sha", d.SHA)
	log.Info("job started")
	ev := &jobEvents{c: c, jobID: d.JobID, maxLine: c.opts.MaxLineBytes}
	start := time.Now()
	r := c.deploy(ctx, d, ev)
	// Lines the runner emits after returning would be numbered after the result.
	ev.closed.Store(true)
	r.JobID = d.JobID
	if r.Status == "" {
		r.Status = protocol.StatusFailure
		if r.Error == "" {
			r.Error = "deploy ended without a status"
		}
	}
	if r.Services == nil {
		r.Services = []protocol.ServiceStatus{}
	}
	if r.DurationMS == 0 {
		r.DurationMS = time.Since(start).Milliseconds()
	}
	if cause := context.Cause(ctx); cause != nil && r.Status == protocol.StatusCancelled && r.Error == "" {
		r.Error = cause.Error()
	}
	c.finish(r)
	c.jobs.done()
}

// deploy calls the runner and turns a panic into a failed result, so one bad deploy
// does not take the agent, and the other projects it serves, down with it.
func (c *Client) deploy(ctx context.Context, d protocol.Deploy, ev deployer.Events) (r protocol.JobResult) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("deploy panicked", "job_id", d.JobID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r = protocol.JobResult{JobID: d.JobID, Status: protocol.StatusFailure, Error: fmt.Sprintf("agent internal error: %v", p)}
		}
	}()
	return c.opts.Runner.Deploy(ctx, d, ev)
}

// jobEvents turns the runner's reports into JOB_PHASE and LOG_CHUNK frames.
type jobEvents struct {
	c       *Client
	jobID   string
	maxLine int
	closed  atomic.Bool
}

var _ deployer.Events = (*jobEvents)(nil)

// Phase queues a JOB_PHASE frame.
func (e *jobEvents) Phase(phase string) {
	if e.closed.Load() {
		return
	}
	e.c.out.frame(e.jobID, protocol.TypeJobPhase, protocol.JobPhase{JobID: e.jobID, Phase: phase})
}

// Log queues one line, truncated on a rune boundary to keep frames small.
func (e *jobEvents) Log(stream, line string) {
	if e.closed.Load() {
		return
	}
	switch stream {
	case protocol.StreamStdout, protocol.StreamStderr, protocol.StreamSystem:
	default:
		stream = protocol.StreamSystem
	}
	if len(line) > e.maxLine {
		cut := e.maxLine
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + " …[truncated]"
	}
	e.c.out.log(e.jobID, stream, line, time.Now().UTC())
}
