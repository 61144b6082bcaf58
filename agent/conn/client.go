package conn

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// Client is the agent's connection to the server and its job loop.
type Client struct {
	opts  Options
	log   *slog.Logger
	wsURL string
	out   *outbox
	jobs  *jobQueue

	// resMu makes "journal a result, queue it" and "list the journal for HELLO" atomic
	// with respect to each other, so a result is either in HELLO or queued, never both.
	resMu sync.Mutex
	// awaiting holds results sent (or in HELLO) but not acknowledged yet.
	awaiting map[string]bool
	// recent remembers acknowledged results, oldest first, for repeated DEPLOYs.
	recent      map[string]protocol.JobResult
	recentOrder []string

	// Self-update (update.go): at most one Apply at a time, owned by Run through bg.
	updating    atomic.Bool
	bg          sync.WaitGroup
	bgCtx       context.Context
	restart     chan struct{}
	restartOnce sync.Once
}

// New checks the options and returns a Client; Run starts it.
func New(opts Options) (*Client, error) {
	if opts.Runner == nil {
		return nil, errors.New("conn: no runner")
	}
	if opts.Journal == nil {
		return nil, errors.New("conn: no journal")
	}
	if opts.Token == "" {
		return nil, errors.New("conn: no token")
	}
	wsURL, err := WebSocketURL(opts.ServerURL)
	if err != nil {
		return nil, err
	}
	opts.setDefaults()
	c := &Client{
		opts:     opts,
		log:      opts.Logger,
		wsURL:    wsURL,
		out:      newOutbox(opts.MaxQueuedLines, opts.MaxQueuedLogBytes),
		awaiting: map[string]bool{},
		recent:   map[string]protocol.JobResult{},
		restart:  make(chan struct{}),
	}
	c.jobs = newJobQueue(opts.MaxQueuedJobs)
	return c, nil
}

// Run connects and serves jobs until ctx ends, then shuts down: it takes no new job,
// lets the running one finish within ShutdownGrace (then cancels it), flushes what the
// server has not received yet within FlushTimeout, closes the connection and returns
// nil. The connection and the jobs deliberately outlive ctx during that drain. After an
// update was installed it shuts down the same way and returns ErrRestart.
func (c *Client) Run(ctx context.Context) error {
	c.resumeInterrupted()
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConn()
	bgCtx, stopBg := context.WithCancel(ctx)
	c.bgCtx = bgCtx
	defer func() {
		stopBg()
		c.bg.Wait()
	}()
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(nil)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.connectLoop(connCtx)
	}()
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		c.work(jobsCtx)
	}()

	var err error
	select {
	case <-ctx.Done():
	case <-c.restart:
		err = ErrRestart
	}
	c.shutdown(workerDone, stopJobs)
	stopConn()
	wg.Wait()
	c.log.Info("agent stopped")
	return err
}

// resumeInterrupted queues the jobs a killed agent left unfinished, first in line: each
// brings its project to a known state and reports the job's result.
func (c *Client) resumeInterrupted() {
	started, err := c.opts.Journal.Interrupted()
	if err != nil {
		c.log.Error("read the journal of started jobs", "err", err)
	}
	for i := len(started) - 1; i >= 0; i-- {
		s := started[i]
		if _, done, _ := c.opts.Journal.Get(s.Job.JobID); done {
			// Killed between journaling the result and closing the start record.
			if err := c.opts.Journal.End(s.Job.JobID); err != nil {
				c.log.Error("journal the job's end", "job_id", s.Job.JobID, "err", err)
			}
			continue
		}
		c.log.Warn("found a job the agent was running when it stopped", "job_id", s.Job.JobID,
			"project", s.Job.Project.Name, "sha", s.Job.SHA, "phase", s.Phase, "started_at", s.StartedAt)
		c.jobs.resume(job{Deploy: s.Job, interrupted: true, phase: s.Phase})
	}
}

// errShutdown is the cause a job's context carries when the shutdown grace ran out.
var errShutdown = errors.New("agent shutting down: shutdown grace period over")

func (c *Client) shutdown(workerDone <-chan struct{}, stopJobs context.CancelCauseFunc) {
	running, refused := c.jobs.drain()
	for _, d := range refused {
		c.finish(refusal(d.JobID, "agent shutting down: the deploy did not start; run it again once the agent is back"))
	}
	if running != "" {
		c.log.Info("shutting down: waiting for the running job", "job_id", running, "grace", c.opts.ShutdownGrace)
	} else {
		c.log.Info("shutting down")
	}
	grace := time.NewTimer(c.opts.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-workerDone:
	case <-grace.C:
		c.log.Warn("shutdown grace over: cancelling the running job", "job_id", running, "grace", c.opts.ShutdownGrace)
		stopJobs(errShutdown)
		select {
		case <-workerDone:
		case <-time.After(c.opts.CancelWait):
			// The runner ignores its context; the process exit will end it.
			c.log.Error("running job did not stop after cancellation", "job_id", running, "waited", c.opts.CancelWait)
		}
	}
	c.flush()
}

// flush waits, bounded, until every queued frame is written and every sent result acknowledged.
func (c *Client) flush() {
	deadline := time.NewTimer(c.opts.FlushTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c.resMu.Lock()
		waiting := len(c.awaiting)
		c.resMu.Unlock()
		select {
		case <-c.out.emptied():
			if waiting == 0 {
				return
			}
		default:
		}
		select {
		case <-deadline.C:
			// Nothing is lost: unacknowledged results stay in the journal for the next HELLO.
			c.log.Warn("shutdown: server did not receive everything in time; the journal keeps the results", "unacked_results", waiting)
			return
		case <-tick.C:
		}
	}
}

// finish journals a result, then queues it behind the job's log lines.
func (c *Client) finish(r protocol.JobResult) {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if err := c.opts.Journal.Put(r); err != nil {
		// Still deliver it from memory; only an agent restart before the ack would lose it.
		c.log.Error("journal result", "job_id", r.JobID, "err", err)
	}
	c.awaiting[r.JobID] = true
	c.out.result(r)
	c.log.Info("job finished", "job_id", r.JobID, "status", r.Status, "duration_ms", r.DurationMS)
}

// forHello lists, for a new connection's HELLO, the journaled results (marked sent) and the
// jobs the agent holds. Lines the last connection wrote but the server did not confirm go
// out again first; a result whose job still has lines waiting is queued behind them rather
// than put in HELLO, so the server stores the lines before the outcome.
func (c *Client) forHello() ([]protocol.JobResult, []protocol.HeldJob) {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	c.out.rewind()
	ready := c.out.takeReadyResults()
	entries, err := c.opts.Journal.List()
	if err != nil {
		c.log.Error("read journal", "err", err)
	}
	out := []protocol.JobResult{}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Result.JobID] = true
		if c.out.hasResult(e.Result.JobID) {
			continue
		}
		if c.out.hasLines(e.Result.JobID) {
			c.out.requeueResult(e.Result)
			continue
		}
		out = append(out, e.Result)
	}
	// A result the journal failed to store, or one resent from memory after its ack.
	for _, r := range ready {
		if !seen[r.JobID] {
			out = append(out, r)
		}
	}
	for _, r := range out {
		c.awaiting[r.JobID] = true
	}
	held := c.jobs.held()
	for _, id := range c.out.resultsQueued() {
		held = append(held, protocol.HeldJob{JobID: id, State: protocol.JobFinished})
	}
	if held == nil {
		held = []protocol.HeldJob{}
	}
	return out, held
}

// finishedResult returns the result of a job this agent already finished, if it knows it.
func (c *Client) finishedResult(jobID string) (protocol.JobResult, bool) {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if r, ok := c.recent[jobID]; ok {
		return r, true
	}
	r, ok, err := c.opts.Journal.Get(jobID)
	if err != nil {
		c.log.Error("read journal", "job_id", jobID, "err", err)
	}
	return r, ok
}

func (c *Client) onAck(jobID string) {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	r, ok, err := c.opts.Journal.Get(jobID)
	if err != nil {
		c.log.Error("read journal", "job_id", jobID, "err", err)
	}
	if !ok {
		c.log.Debug("acknowledgement for a result not in the journal", "job_id", jobID)
		delete(c.awaiting, jobID)
		return
	}
	if err := c.opts.Journal.Remove(jobID); err != nil {
		c.log.Error("remove acknowledged result", "job_id", jobID, "err", err)
	}
	c.out.dropResult(jobID)
	delete(c.awaiting, jobID)
	if _, seen := c.recent[jobID]; !seen {
		c.recentOrder = append(c.recentOrder, jobID)
	}
	c.recent[jobID] = r
	for len(c.recentOrder) > c.opts.RecentResults {
		delete(c.recent, c.recentOrder[0])
		c.recentOrder = c.recentOrder[1:]
	}
	c.log.Info("result acknowledged", "job_id", jobID)
}

func (c *Client) onDeploy(d protocol.Deploy) {
	// Never log d itself: it carries the source token and the secrets.
	log := c.log.With("job_id", d.JobID, "project", d.Project.Name, "sha", d.SHA)
	// The finished check runs inside submit, under the queue's lock, so a job that ends
	// between the two checks cannot be run a second time.
	res, r := c.jobs.submit(d, c.finishedResult)
	switch res {
	case submitFinished:
		// Queued again even if a copy may still be in flight: the server asked, and it
		// keeps the first result it stores for a job id.
		log.Info("deploy repeated for a finished job; sending its result again instead of running it")
		c.resMu.Lock()
		if _, acked := c.recent[d.JobID]; !acked {
			c.awaiting[d.JobID] = true
		}
		c.resMu.Unlock()
		c.out.result(r)
	case submitAccepted:
		log.Info("deploy accepted")
		c.out.frame(d.JobID, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: d.JobID})
	case submitDuplicate:
		log.Info("deploy repeated for a job already running or queued")
		c.out.frame(d.JobID, protocol.TypeJobAccepted, protocol.JobAccepted{JobID: d.JobID})
	case submitBusy:
		log.Warn("deploy refused: job queue full", "max_queued", c.opts.MaxQueuedJobs)
		c.finish(refusal(d.JobID, "agent busy: a deploy is running and the queue is full; run it again later"))
	case submitDraining:
		log.Warn("deploy refused: agent shutting down")
		c.finish(refusal(d.JobID, "agent shutting down: the deploy did not start; run it again once the agent is back"))
	}
}

// onLogAck forgets the job's lines the server has stored.
func (c *Client) onLogAck(a protocol.LogAck) {
	c.out.ack(a.JobID, a.Seq)
}

func (c *Client) onCancel(jobID string) {
	switch c.jobs.cancel(jobID) {
	case cancelRunning:
		c.log.Info("cancelling the running job", "job_id", jobID)
	case cancelQueued:
		c.log.Info("cancelled a queued job before it started", "job_id", jobID)
		c.finish(protocol.JobResult{JobID: jobID, Status: protocol.StatusCancelled, Error: "cancelled before it started", Services: []protocol.ServiceStatus{}})
	default:
		c.log.Debug("cancel for a job that is not running or queued", "job_id", jobID)
	}
}

func refusal(jobID, msg string) protocol.JobResult {
	return protocol.JobResult{JobID: jobID, Status: protocol.StatusFailure, Error: msg, Services: []protocol.ServiceStatus{}}
}
