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

// job is a deploy to run, or one a killed agent left unfinished, to bring to a known state.
type job struct {
	protocol.Deploy
	// interrupted marks a job found in the journal at start; phase is the last it reached.
	interrupted bool
	phase       string
}

// jobQueue holds the running job and the deploys waiting behind it. Jobs run one at a
// time because they share the Docker engine and often the same compose project.
type jobQueue struct {
	mu        sync.Mutex
	max       int
	pending   []job
	runningID string
	cancelRun context.CancelCauseFunc
	draining  bool
	// updateHold refuses deploys, like draining, while an update installs; release lifts it
	// when the install fails and the agent goes on with its build.
	updateHold bool
	wake       chan struct{}
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
	if q.draining || q.updateHold {
		return submitDraining, protocol.JobResult{}
	}
	if len(q.pending) >= q.max {
		return submitBusy, protocol.JobResult{}
	}
	q.pending = append(q.pending, job{Deploy: d})
	q.wakeLocked()
	return submitAccepted, protocol.JobResult{}
}

// resume queues an interrupted job ahead of any deploy: the project must reach a known
// state before anything else runs on it.
func (q *jobQueue) resume(j job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append([]job{j}, q.pending...)
	q.wakeLocked()
}

func (q *jobQueue) wakeLocked() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// held lists the running and queued jobs, for HELLO.
func (q *jobQueue) held() []protocol.HeldJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []protocol.HeldJob
	if q.runningID != "" {
		out = append(out, protocol.HeldJob{JobID: q.runningID, State: protocol.JobRunning})
	}
	for _, p := range q.pending {
		state := protocol.JobQueued
		if p.interrupted {
			// Bringing its project to a known state is how the job goes on.
			state = protocol.JobRunning
		}
		out = append(out, protocol.HeldJob{JobID: p.JobID, State: state})
	}
	return out
}

// next blocks for the next job and marks it running; false once draining or ctx ends.
func (q *jobQueue) next(ctx context.Context, cancel context.CancelCauseFunc) (job, bool) {
	for {
		q.mu.Lock()
		if q.draining || ctx.Err() != nil {
			q.mu.Unlock()
			return job{}, false
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
		// An interrupted job is not cancelled: its project must reach a known state.
		if p.JobID == jobID && !p.interrupted {
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

// holdIfIdle stops taking jobs if none is running or queued: the agent is about to
// restart into an update. Deploys that arrive meanwhile get the draining refusal; release
// takes them again if the install fails.
func (q *jobQueue) holdIfIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runningID != "" || len(q.pending) > 0 || q.draining || q.updateHold {
		return false
	}
	q.updateHold = true
	return true
}

// release takes jobs again after holdIfIdle: the update was not installed.
func (q *jobQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.updateHold = false
}

// drain stops taking jobs and returns the running job's id and the deploys that will
// not start. Interrupted jobs are not among them: their journal entries stay, for the
// next start to finish.
func (q *jobQueue) drain() (string, []protocol.Deploy) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.draining = true
	var refused []protocol.Deploy
	for _, p := range q.pending {
		if !p.interrupted {
			refused = append(refused, p.Deploy)
		}
	}
	q.pending = nil
	q.wakeLocked()
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

func (c *Client) runJob(ctx context.Context, j job) {
	d := j.Deploy
	log := c.log.With("job_id", d.JobID, "project", d.Project.Name, "sha", d.SHA)
	ev := &jobEvents{c: c, jobID: d.JobID, maxLine: c.opts.MaxLineBytes}
	var r protocol.JobResult
	start := time.Now()
	if j.interrupted {
		log.Warn("bringing the project of a job interrupted by an agent restart to a known state", "phase", j.phase)
		// Lines of the killed agent may be stored already; these follow them (see recoverySeq).
		c.out.startSeq(d.JobID, c.recoverySeq(d.JobID))
		r = c.recover(ctx, j, ev)
	} else {
		log.Info("job started")
		// Journaled before anything is touched: a restart finds the job, finishes it and
		// removes its secrets' override. A job that cannot be journaled does not run, so no
		// override is ever written that a restart would not know to remove.
		if err := c.opts.Journal.Begin(d); err != nil {
			log.Error("journal the job's start", "err", err)
			r = protocol.JobResult{Status: protocol.StatusFailure, Error: fmt.Sprintf(
				"the agent could not record the job's start on its disk (%v); nothing was deployed. Check the agent's data directory (free space, permissions) and redeploy.", err)}
		} else {
			ev.journal = true
			r = c.deploy(ctx, d, ev)
		}
	}
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
	// The result is journaled: the start record has done its work.
	if err := c.opts.Journal.End(d.JobID); err != nil {
		log.Error("journal the job's end", "err", err)
	}
	c.jobs.done()
}

// recoverySeq is the seq after which the lines of the nth recovery of an interrupted job
// are numbered: n * 2^32. The killed agent's last seq is lost with it, and the server
// ignores a seq it has stored already, so starting at 1 again, or where an earlier
// recovery (killed too) started, would drop these lines.
func (c *Client) recoverySeq(jobID string) int64 {
	n, err := c.opts.Journal.Recovering(jobID)
	if err != nil {
		// The count could not be kept: this recovery's lines may repeat an earlier one's seqs.
		c.log.Error("journal the job's recovery", "job_id", jobID, "err", err)
	}
	return int64(max(n, 1)) << 32
}

// recover brings an interrupted job's project to a known state and returns the job's
// result; a runner that cannot says so.
func (c *Client) recover(ctx context.Context, j job, ev deployer.Events) (r protocol.JobResult) {
	rec, ok := c.opts.Runner.(Recoverer)
	if !ok {
		return protocol.JobResult{JobID: j.JobID, Status: protocol.StatusFailure,
			Error: "The agent restarted during the deploy; the state of the project's services is unknown. Check them and redeploy."}
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("recovery panicked", "job_id", j.JobID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r = protocol.JobResult{JobID: j.JobID, Status: protocol.StatusFailure, Error: fmt.Sprintf("The agent restarted during the deploy and then hit an internal error: %v", p)}
		}
	}()
	return rec.Recover(ctx, j.Deploy, j.phase, ev)
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
	// journal records each phase in the job's start record, so a restarted agent knows
	// whether the containers had begun to change.
	journal bool
}

var _ deployer.Events = (*jobEvents)(nil)

// Phase records the phase and queues a JOB_PHASE frame.
func (e *jobEvents) Phase(phase string) {
	if e.closed.Load() {
		return
	}
	if e.journal {
		// Written before the step starts: a kill during it finds the step recorded.
		if err := e.c.opts.Journal.Phase(e.jobID, phase); err != nil {
			e.c.log.Error("journal the job's phase", "job_id", e.jobID, "phase", phase, "err", err)
		}
	}
	e.c.out.frame(e.jobID, protocol.TypeJobPhase, protocol.JobPhase{JobID: e.jobID, Phase: phase})
}

// Plan queues the JOB_PHASE frame that carries the job's plan.
func (e *jobEvents) Plan(plan protocol.Plan) {
	if e.closed.Load() {
		return
	}
	e.c.out.frame(e.jobID, protocol.TypeJobPhase, protocol.JobPhase{JobID: e.jobID, Phase: protocol.PhasePlanned, Plan: &plan})
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
