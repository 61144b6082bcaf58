// Package hub is the server side of the agent connection: it authenticates agents at
// GET /agent/ws, keeps one WebSocket per agent, sends DEPLOY and CANCEL, and turns what the
// agents report (phases, log lines, results) into store writes and Sink calls.
//
// The wire contract is agent/protocol; docs/hub.md describes the behaviour and the figures.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/store"
)

// ErrAgentOffline is returned when the agent has no live connection to this server.
var ErrAgentOffline = errors.New("agent is offline")

// ErrAgentUpdating is returned while the agent has an update offer to answer: it may be
// restarting into the new build.
var ErrAgentUpdating = errors.New("agent is updating itself")

// ErrQueueFull is returned when the agent's outbound queue is full: its connection is stuck.
var ErrQueueFull = errors.New("agent connection is not keeping up (outbound queue full)")

// Store is the part of *store.Store the hub needs.
type Store interface {
	AgentByID(ctx context.Context, id int64) (store.Agent, error)
	MarkAgentConnected(ctx context.Context, id int64, h store.AgentHello, at time.Time) error
	SetAgentStatus(ctx context.Context, id int64, status string) error
	TouchAgent(ctx context.Context, id int64, at time.Time) error
	AppendAgentLogs(ctx context.Context, deploymentID, agentID int64, lines []store.LogLine) error
	// DeploymentByID tells whether a job this process did not dispatch is the agent's.
	DeploymentByID(ctx context.Context, id int64) (store.Deployment, error)
	// ConsumeAgentBootstrap, RetryAgentBootstrap and AddAudit serve bootstrap.go and duplicate.go.
	ConsumeAgentBootstrap(ctx context.Context, id int64, bootstrapHash, tokenHash, keyHash string, now time.Time) (bool, error)
	RetryAgentBootstrap(ctx context.Context, id int64, bootstrapHash, keyHash, tokenHash string, usedAfter time.Time) (bool, error)
	AddAudit(ctx context.Context, e store.AuditEntry) error
}

var _ Store = (*store.Store)(nil)

// Sink receives what agents report; the deploy state machine implements it.
//
// Calls for one agent come from that agent's worker, one at a time, in wire order, never
// from a connection's reader: a call may take as long as GitHub does without dropping the
// agent. Their context ends only when the hub closes, not with the connection. The same
// JobResult may arrive more than once (a result is repeated in every HELLO until RESULT_ACK
// reaches the agent, and an ack can be lost with a dying connection), so JobResult must
// de-duplicate by job id: a second call for a finished job returns nil and changes nothing.
type Sink interface {
	// AgentConnected is called once the agent's HELLO is recorded and its unacknowledged
	// results handled; jobs may be dispatched to it from then on.
	AgentConnected(ctx context.Context, agentID int64, hello protocol.Hello)
	// JobsHeld is called, for an agent whose HELLO lists its jobs (protocol 2), with that
	// list, after its unacknowledged results and before anything may be dispatched to it:
	// a job dispatched to the agent that it does not hold never arrived or was lost.
	JobsHeld(ctx context.Context, agentID int64, held []protocol.HeldJob)
	// JobAccepted reports the agent has taken a job.
	JobAccepted(ctx context.Context, agentID int64, jobID string)
	// JobPhase reports a job's progress.
	JobPhase(ctx context.Context, agentID int64, jobID, phase string)
	// JobPlan reports what a job's swap will change, before anything stops (the JOB_PHASE
	// that carries a plan; JobPhase hears of it too).
	JobPlan(ctx context.Context, agentID int64, jobID string, plan protocol.Plan)
	// JobResult records a job's outcome; only a nil return acknowledges it to the agent.
	JobResult(ctx context.Context, agentID int64, res protocol.JobResult) error
}

// Options configures a Hub. Zero values take the defaults named on each field.
type Options struct {
	// Store persists agent status and logs.
	Store Store
	// Sink receives agent reports.
	Sink Sink
	// Logger receives the hub's logs (default: discard).
	Logger *slog.Logger
	// PingInterval is how often the server pings each agent (default 20s).
	PingInterval time.Duration
	// PongTimeout is how long a ping may go unanswered before the connection is closed
	// with StatusGoingAway (default 10s).
	PongTimeout time.Duration
	// HeartbeatEvery is how often an agent's last_heartbeat is written while it answers pings
	// (default 30s): not on every ping, to spare the database.
	HeartbeatEvery time.Duration
	// HelloTimeout bounds the wait for the first frame (default 10s).
	HelloTimeout time.Duration
	// WriteTimeout bounds one frame write (default 10s).
	WriteTimeout time.Duration
	// Now is the clock for stored times and the token cache (default time.Now).
	Now func() time.Time
	// LogBatchSize is how many lines of one job are written in one statement at most (default 200).
	LogBatchSize int
	// LogFlushEvery is how long a line may wait in the buffer (default 250ms).
	LogFlushEvery time.Duration
	// TokenCacheTTL is how long a verified token skips bcrypt (default 5m).
	TokenCacheTTL time.Duration
	// TokenCacheSize bounds the verified-token cache (default 10000 entries).
	TokenCacheSize int
	// VerifyToken checks a token against a stored hash (default agenttoken.Verify, bcrypt).
	VerifyToken func(token, hash string) error
	// MintToken makes the long-lived token an agent gets for its bootstrap token (default
	// agenttoken.Mint).
	MintToken func(agentID int64) (agenttoken.Minted, error)
	// OutboundQueue is how many frames may wait for one connection's writer (default 16).
	OutboundQueue int

	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client
	// (default none: the peer's address is the client's).
	TrustedProxies []netip.Prefix
	// SourceRate bounds token checks per source address (an IPv6 /64) that fail
	// (default 20 at once, then one every 3s).
	SourceRate Rate
	// AgentRate bounds failing token checks per agent id, from any source (default 10 at
	// once, then one every 6s).
	AgentRate Rate
	// LimiterKeys bounds how many sources, and how many agent ids, are tracked (default 10000 each).
	LimiterKeys int
	// VerifySlots is how many token checks (bcrypt) may run at once (default NumCPU/2, at least 1).
	VerifySlots int
	// VerifyQueue is how many handshakes may wait for a slot (default 16×VerifySlots; negative: none).
	VerifyQueue int
	// VerifyWait bounds that wait (default 2s); past it the handshake is answered 429.
	VerifyWait time.Duration
	// FrameRate paces the frames read from one connection (default protocol.MaxFrameBurst
	// at once, then protocol.MaxFramesPerSecond).
	FrameRate Rate

	// Updates is the agent build this server serves, offered to agents running another
	// (update.go); nil offers none.
	Updates UpdateSource
	// UpdateTimeout bounds how long an agent offered an update counts as busy without
	// answering or reconnecting (default 5m).
	UpdateTimeout time.Duration
	// WorkQueueBytes bounds the frames of one agent waiting for its worker (default 8 MiB);
	// past it the connection's reader waits.
	WorkQueueBytes int
	// StoreRetryFor is how long a failed write of an agent's lines, or a result the sink
	// could not record, is retried before the connection is closed with StatusTryAgainLater,
	// so that the agent reconnects and sends them again (default 15s).
	StoreRetryFor time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDur(&o.PingInterval, 20*time.Second)
	setDur(&o.PongTimeout, 10*time.Second)
	setDur(&o.HeartbeatEvery, 30*time.Second)
	setDur(&o.HelloTimeout, 10*time.Second)
	setDur(&o.WriteTimeout, 10*time.Second)
	setDur(&o.LogFlushEvery, 250*time.Millisecond)
	setDur(&o.TokenCacheTTL, 5*time.Minute)
	setDur(&o.UpdateTimeout, 5*time.Minute)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogBatchSize <= 0 {
		o.LogBatchSize = 200
	}
	if o.TokenCacheSize <= 0 {
		o.TokenCacheSize = 10000
	}
	if o.VerifyToken == nil {
		o.VerifyToken = agenttoken.Verify
	}
	if o.OutboundQueue <= 0 {
		o.OutboundQueue = 16
	}
	if o.WorkQueueBytes <= 0 {
		o.WorkQueueBytes = 8 << 20
	}
	setDur(&o.StoreRetryFor, 15*time.Second)
	if o.MintToken == nil {
		o.MintToken = agenttoken.Mint
	}
	o.setLimitDefaults()
}

func (o *Options) setLimitDefaults() {
	if o.SourceRate.Burst <= 0 || o.SourceRate.Every <= 0 {
		o.SourceRate = Rate{Burst: 20, Every: 3 * time.Second}
	}
	if o.AgentRate.Burst <= 0 || o.AgentRate.Every <= 0 {
		o.AgentRate = Rate{Burst: 10, Every: 6 * time.Second}
	}
	if o.LimiterKeys <= 0 {
		o.LimiterKeys = 10000
	}
	if o.VerifySlots <= 0 {
		o.VerifySlots = max(1, runtime.NumCPU()/2)
	}
	if o.VerifyQueue == 0 {
		o.VerifyQueue = 16 * o.VerifySlots
	}
	setDur(&o.VerifyWait, 2*time.Second)
	if o.FrameRate.Burst <= 0 || o.FrameRate.Every <= 0 {
		o.FrameRate = Rate{Burst: protocol.MaxFrameBurst, Every: time.Second / protocol.MaxFramesPerSecond}
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Hub holds every agent connection of this server.
type Hub struct {
	opts     Options
	log      *slog.Logger
	cache    *tokenCache
	bySource *limiterSet[sourceKey]
	byAgent  *limiterSet[int64]
	slots    *verifySlots
	// auditPace paces the audit entries of refusals (duplicate.go).
	auditPace *limiterSet[auditKey]

	mu     sync.Mutex
	agents map[int64]*agentState
	closed bool
	// serving counts connections between upgrade and the end of their teardown.
	serving sync.WaitGroup
	// workers counts running agent workers; sinkCtx is what their sink calls run under,
	// cancelled by Close.
	workers    sync.WaitGroup
	sinkCtx    context.Context
	cancelSink context.CancelFunc
}

// agentState outlives connections: in-flight jobs carry over when an agent reconnects,
// and its worker orders what consecutive connections of one agent report. It is kept for
// the hub's lifetime, one small entry per agent that ever connected.
type agentState struct {
	// work runs the agent's reports in order: the departure of one connection is handled
	// before the arrival of the next, so a stale disconnect never undoes a fresh connect.
	work *worker
	// statusMu serialises store writes of this agent's status; written is the last value stored.
	// It is never held while calling out of the hub.
	statusMu sync.Mutex
	written  string

	// Guarded by Hub.mu.
	conn *conn
	jobs map[string]struct{}
	// autoUpdate is the agent's self-update switch (update.go).
	autoUpdate bool
}

// New returns a Hub; Store and Sink are required.
func New(opts Options) *Hub {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		opts:       opts,
		log:        opts.Logger,
		cache:      newTokenCache(opts.TokenCacheSize, opts.TokenCacheTTL),
		bySource:   newLimiterSet[sourceKey](opts.SourceRate, opts.LimiterKeys),
		byAgent:    newLimiterSet[int64](opts.AgentRate, opts.LimiterKeys),
		slots:      newVerifySlots(opts.VerifySlots, opts.VerifyQueue, opts.VerifyWait),
		auditPace:  newLimiterSet[auditKey](Rate{Burst: 1, Every: auditEvery}, opts.LimiterKeys),
		agents:     map[int64]*agentState{},
		sinkCtx:    ctx,
		cancelSink: cancel,
	}
}

// Online reports whether the agent has a live connection to this server.
func (h *Hub) Online(agentID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.agents[agentID]
	return st != nil && st.conn != nil
}

// Idle reports whether the agent is connected, its HELLO handled, and has no job in flight.
// An agent runs one job at a time, so the orchestrator hands it the next only when it is
// idle; before its HELLO is handled the server does not know what the agent holds.
func (h *Hub) Idle(agentID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.agents[agentID]
	return st != nil && st.conn != nil && st.conn.ready.Load() && len(st.jobs) == 0 && !st.updating()
}

// ConnectedCount is the number of agents connected now.
func (h *Hub) ConnectedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, st := range h.agents {
		if st.conn != nil {
			n++
		}
	}
	return n
}

// Dispatch queues a DEPLOY for the agent's writer and marks the agent busy. A nil error
// means the job is in flight: it ends with a JobResult, sent again after a reconnect if the
// connection drops first.
func (h *Hub) Dispatch(ctx context.Context, agentID int64, job protocol.Deploy) error {
	if job.JobID == "" {
		return errors.New("dispatch: job without id")
	}
	frame, err := protocol.Encode(protocol.TypeDeploy, job)
	if err != nil {
		return fmt.Errorf("dispatch job %s: %w", job.JobID, err)
	}
	h.mu.Lock()
	st := h.agents[agentID]
	// A DEPLOY must follow the HELLO's handling: the server learns there what the agent holds.
	if st == nil || st.conn == nil || !st.conn.ready.Load() {
		h.mu.Unlock()
		return fmt.Errorf("dispatch job %s to agent %d: %w", job.JobID, agentID, ErrAgentOffline)
	}
	// An agent offered an update may be restarting into it (update.go): the job waits in the
	// queue, and the agent's next idle moment dispatches it.
	if st.updating() {
		h.mu.Unlock()
		return fmt.Errorf("dispatch job %s to agent %d: %w", job.JobID, agentID, ErrAgentUpdating)
	}
	// The send happens under h.mu so that a connection's teardown, which takes its list of
	// active jobs under h.mu after its writer stopped, either sees this job or refuses it.
	if err := st.conn.trySend(outFrame{typ: protocol.TypeDeploy, b: frame}); err != nil {
		h.mu.Unlock()
		return fmt.Errorf("dispatch job %s to agent %d: %w", job.JobID, agentID, err)
	}
	st.jobs[job.JobID] = struct{}{}
	h.mu.Unlock()
	h.syncStatus(ctx, agentID, st)
	return nil
}

// Cancel queues a CANCEL for the job on the agent's connection.
func (h *Hub) Cancel(agentID int64, jobID string) error {
	frame, err := protocol.Encode(protocol.TypeCancel, protocol.Cancel{JobID: jobID})
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", jobID, err)
	}
	h.mu.Lock()
	st := h.agents[agentID]
	if st == nil || st.conn == nil {
		h.mu.Unlock()
		return fmt.Errorf("cancel job %s on agent %d: %w", jobID, agentID, ErrAgentOffline)
	}
	sendErr := st.conn.trySend(outFrame{typ: protocol.TypeCancel, b: frame})
	// The job is over for the server either way: it stops counting as in flight, so a job
	// whose DEPLOY or result was lost cannot keep the agent "busy" for ever. A result the
	// agent still sends reaches the sink as usual.
	_, had := st.jobs[jobID]
	delete(st.jobs, jobID)
	h.mu.Unlock()
	if had {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.syncStatus(ctx, agentID, st)
	}
	if sendErr != nil {
		return fmt.Errorf("cancel job %s on agent %d: %w", jobID, agentID, sendErr)
	}
	return nil
}

// Revoke closes the agent's connection with CloseReasonTokenRevoked and forgets its cached
// tokens; call it after rotating or deleting the agent's token.
func (h *Hub) Revoke(agentID int64) {
	h.cache.forgetAgent(agentID)
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.agents[agentID]; st != nil && st.conn != nil {
		st.conn.stop(websocket.StatusPolicyViolation, protocol.CloseReasonTokenRevoked)
	}
}

// Close refuses new connections, closes every connection with CloseReasonShutdown and
// waits until each is torn down (agents marked offline, logs flushed). Sink calls still
// under way are cancelled: an agent sends again what it has no acknowledgement for.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for _, st := range h.agents {
		if st.conn != nil {
			st.conn.stop(websocket.StatusGoingAway, protocol.CloseReasonShutdown)
		}
	}
	h.mu.Unlock()
	h.serving.Wait()
	h.cancelSink()
	h.workers.Wait()
}

// state returns the agent's state, creating it.
func (h *Hub) state(agentID int64) *agentState {
	st := h.agents[agentID]
	if st == nil {
		st = &agentState{jobs: map[string]struct{}{}, work: newWorker(h)}
		h.agents[agentID] = st
	}
	return st
}

// register makes c the agent's connection, stopping the one it replaces. It fails once the
// hub is closing.
func (h *Hub) register(c *conn) (*agentState, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	st := h.state(c.agentID)
	if old := st.conn; old != nil {
		old.stop(websocket.StatusPolicyViolation, protocol.CloseReasonReplaced)
	}
	st.conn = c
	return st, true
}

// unregister detaches c; it reports false when a newer connection had replaced it.
func (h *Hub) unregister(c *conn, st *agentState) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st.conn == c {
		st.conn = nil
		return true
	}
	// Frames the replaced connection never wrote (a RESULT_ACK, a CANCEL) go out on its
	// successor; the agent ignores a repeated one. A DEPLOY does not when the successor lists
	// its jobs in HELLO (protocol 2): it would arrive after that HELLO, which the sink has
	// already compared with its dispatched jobs and found without it, so the sink sends the
	// job again itself.
	for {
		select {
		case f := <-c.out:
			next := st.conn
			if next != nil && (f.typ != protocol.TypeDeploy || next.protocol < 2) {
				_ = next.trySend(f)
			}
			continue
		default:
		}
		return false
	}
}

// disconnected marks the agent offline and forgets its unfinished jobs, unless a new
// connection came in meanwhile. The agent journals their results and sends them when it is
// back, to Sink.JobResult; the sink's own sweeper fails a job whose agent stays away. It
// runs on the agent's worker.
func (h *Hub) disconnected(ctx context.Context, agentID int64, st *agentState) {
	h.mu.Lock()
	if st.conn != nil {
		h.mu.Unlock()
		return
	}
	jobs := len(st.jobs)
	clear(st.jobs)
	h.mu.Unlock()
	h.syncStatus(ctx, agentID, st)
	h.log.Info("agent disconnected", "agent_id", agentID, "active_jobs", jobs)
}

// holdJobs makes the agent's in-flight set the jobs its HELLO lists as queued or running:
// the agent knows best, and a job it does not hold is not running anywhere. It reports
// whether the set changed.
func (h *Hub) holdJobs(st *agentState, held []protocol.HeldJob) bool {
	want := map[string]struct{}{}
	for _, j := range held {
		if j.JobID != "" && (j.State == protocol.JobQueued || j.State == protocol.JobRunning) {
			want[j.JobID] = struct{}{}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := len(want) != len(st.jobs)
	for id := range want {
		if _, ok := st.jobs[id]; !ok {
			changed = true
		}
	}
	st.jobs = want
	return changed
}

// jobStarted and jobDone keep the agent's in-flight set; they report whether it changed.
func (h *Hub) jobStarted(st *agentState, jobID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := st.jobs[jobID]; ok {
		return false
	}
	st.jobs[jobID] = struct{}{}
	return true
}

func (h *Hub) jobDone(st *agentState, jobID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := st.jobs[jobID]; !ok {
		return false
	}
	delete(st.jobs, jobID)
	return true
}

// syncStatus writes the agent's current status (offline, busy or online) if it differs
// from the last one written. Computing it under statusMu, from the state at that moment,
// means the last write always matches the last state: a slow "offline" of a dead
// connection cannot land after the "online" of its successor.
func (h *Hub) syncStatus(ctx context.Context, agentID int64, st *agentState) {
	st.statusMu.Lock()
	defer st.statusMu.Unlock()
	h.mu.Lock()
	want := store.AgentOnline
	switch {
	case st.conn == nil:
		want = store.AgentOffline
	case len(st.jobs) > 0:
		want = store.AgentBusy
	}
	h.mu.Unlock()
	if want == st.written {
		return
	}
	if err := h.opts.Store.SetAgentStatus(ctx, agentID, want); err != nil {
		h.log.Warn("store agent status", "agent_id", agentID, "status", want, "err", err)
		return
	}
	st.written = want
}

// markConnected stores the HELLO details (which set the agent online) and then the real
// status, busy when jobs carried over from an earlier connection.
func (h *Hub) markConnected(ctx context.Context, c *conn, st *agentState, hello protocol.Hello) error {
	st.statusMu.Lock()
	h.mu.Lock()
	current := st.conn == c
	h.mu.Unlock()
	if !current {
		st.statusMu.Unlock()
		return fmt.Errorf("record agent %d connected: replaced by a newer connection", c.agentID)
	}
	err := h.opts.Store.MarkAgentConnected(ctx, c.agentID, store.AgentHello{
		Version: hello.AgentVersion, Hostname: hello.Hostname, Docker: hello.Docker, Compose: hello.Compose,
	}, h.opts.Now())
	if err == nil {
		st.written = store.AgentOnline
	}
	st.statusMu.Unlock()
	if err != nil {
		return fmt.Errorf("record agent %d connected: %w", c.agentID, err)
	}
	h.syncStatus(ctx, c.agentID, st)
	return nil
}
