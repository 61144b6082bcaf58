package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
)

// teardownTimeout bounds the store and sink calls made after a connection ended.
const teardownTimeout = 10 * time.Second

// ServeHTTP serves GET /agent/ws: the token is checked before the upgrade, then the
// connection lives on this goroutine (its reader) until it ends.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSONError(w, http.StatusMethodNotAllowed, msgMethod)
		return
	}
	addr := clientAddr(r, h.opts.TrustedProxies)
	src := keyOf(addr)
	agentID, err := h.authenticate(r.Context(), r.Header.Get("Authorization"), src)
	if err != nil {
		writeRefusal(w, err, http.StatusInternalServerError)
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		writeJSONError(w, http.StatusServiceUnavailable, msgShuttingDown)
		return
	}
	h.serving.Add(1)
	h.mu.Unlock()
	defer h.serving.Done()

	c := newConn(h, agentID)
	c.source = addr.String()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Any ping or pong from the agent proves it is alive.
		OnPingReceived: func(context.Context, []byte) bool { c.heard(); return true },
		OnPongReceived: func(context.Context, []byte) { c.heard() },
	})
	if err != nil {
		// Accept has answered the request already.
		c.log.Info("agent handshake refused", "err", err)
		return
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	c.ws = ws
	c.run()
}

// conn is one agent connection. Its goroutines: the reader (the HTTP handler's own), one
// writer that owns every frame write and the ping ticker, and at most one short-lived ping
// waiting for its pong. stop() is the shared cancel: it records the close status, and the
// writer performs the close handshake.
type conn struct {
	hub     *Hub
	agentID int64
	log     *slog.Logger
	ws      *websocket.Conn
	out     chan outFrame
	st      *agentState // set once registered
	// protocol is the version the agent's HELLO announced.
	protocol int

	ctx    context.Context
	cancel context.CancelFunc

	stopOnce    sync.Once
	closeCode   websocket.StatusCode
	closeReason string

	lastHeard  atomic.Int64 // monotonic-free wall nanoseconds of the last frame, ping or pong
	lastTouch  atomic.Int64 // Options.Now nanoseconds of the last heartbeat written
	registered atomic.Bool
	// ready is set once the HELLO is handled: only then may a DEPLOY go out (Hub.Dispatch).
	ready atomic.Bool
	// readerWaiting is set while the reader waits for room in the agent's work queue.
	readerWaiting atomic.Bool
	pinging       atomic.Bool
	pings         sync.WaitGroup
	writerDone    chan struct{}

	logs *logBuffer
	gate frameGate   // frames.go
	upd  updateState // update.go

	source   string // the client's address, for the audit log
	hostname string // from HELLO; written before register, read by a newcomer (duplicate.go)
}

// outFrame is an encoded frame waiting for the writer, with its type.
type outFrame struct {
	typ string
	b   []byte
}

func newConn(h *Hub, agentID int64) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		hub:        h,
		agentID:    agentID,
		log:        h.log.With("agent_id", agentID),
		out:        make(chan outFrame, h.opts.OutboundQueue),
		ctx:        ctx,
		cancel:     cancel,
		writerDone: make(chan struct{}),
	}
	c.heard()
	c.logs = newLogBuffer(c)
	return c
}

// stop asks the connection to close with code and reason; the first call wins.
func (c *conn) stop(code websocket.StatusCode, reason string) {
	c.stopOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		c.cancel()
	})
}

func (c *conn) heard() { c.lastHeard.Store(time.Now().UnixNano()) }

// trySend queues a frame without waiting; the caller holds Hub.mu.
func (c *conn) trySend(frame outFrame) error {
	if c.ctx.Err() != nil {
		return ErrAgentOffline
	}
	select {
	case c.out <- frame:
		return nil
	default:
		return ErrQueueFull
	}
}

// send queues a frame, waiting for room while the connection lives.
func (c *conn) send(typ string, payload any) error {
	frame, err := protocol.Encode(typ, payload)
	if err != nil {
		return err
	}
	select {
	case c.out <- outFrame{typ: typ, b: frame}:
		return nil
	case <-c.ctx.Done():
		return ErrAgentOffline
	}
}

// run serves the connection until it ends and then tears it down.
func (c *conn) run() {
	h := c.hub
	go c.writeLoop()
	helloTimer := time.AfterFunc(h.opts.HelloTimeout, func() {
		c.stop(websocket.StatusPolicyViolation, protocol.CloseReasonHelloFirst)
	})
	hello, ok := c.readHello()
	// A timer that fired already has stopped the connection, HELLO or not.
	if !helloTimer.Stop() || !ok {
		c.finish()
		return
	}
	c.protocol = hello.Protocol
	c.hostname = hello.Hostname
	if !c.admitted(hello) {
		c.finish()
		return
	}
	st, ok := h.register(c)
	if !ok {
		c.stop(websocket.StatusGoingAway, protocol.CloseReasonShutdown)
		c.finish()
		return
	}
	c.st = st
	defer c.teardown()
	// The HELLO is handled on the agent's worker, after whatever the agent's previous
	// connection left there, while this reader goes on reading.
	st.work.control(func() { c.connected(hello) })
	c.readLoop()
}

// connected records the HELLO, settles the jobs it lists and the results it carries, and
// then tells the sink the agent is here. It runs on the agent's worker.
func (c *conn) connected(hello protocol.Hello) {
	h := c.hub
	if c.ctx.Err() != nil {
		return
	}
	c.lastTouch.Store(h.opts.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	err := h.markConnected(ctx, c, c.st, hello)
	cancel()
	if err != nil {
		switch {
		case c.ctx.Err() != nil:
			// Replaced or shut down meanwhile.
		case store.IsNotFound(err):
			// The agent was deleted between the token check and now.
			c.stop(websocket.StatusPolicyViolation, protocol.CloseReasonTokenRevoked)
		default:
			c.log.Error("agent connection refused", "err", err)
			c.stop(websocket.StatusInternalError, "server error")
		}
		return
	}
	c.registered.Store(true)
	c.log.Info("agent connected", "version", hello.AgentVersion, "hostname", hello.Hostname,
		"protocol", hello.Protocol, "unacked_results", len(hello.UnackedResults), "jobs", len(hello.Jobs))
	if hello.Jobs != nil && h.holdJobs(c.st, hello.Jobs) {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		h.syncStatus(ctx, c.agentID, c.st)
		cancel()
	}
	for _, res := range hello.UnackedResults {
		if res.JobID != "" && !c.handleResult(res) {
			return
		}
	}
	if hello.Jobs != nil {
		// Nothing can be dispatched yet (ready is unset), so what the sink compares the list
		// with is only what earlier connections were given.
		h.opts.Sink.JobsHeld(h.sinkCtx, c.agentID, hello.Jobs)
	}
	c.ready.Store(true)
	h.opts.Sink.AgentConnected(h.sinkCtx, c.agentID, hello)
	c.updateOnConnect(hello) // update.go
}

// readHello reads and checks the first frame; on failure it has stopped the connection.
func (c *conn) readHello() (protocol.Hello, bool) {
	typ, v, ok := c.readFrame()
	if !ok {
		return protocol.Hello{}, false
	}
	hello, isHello := v.(*protocol.Hello)
	if typ != protocol.TypeHello || !isHello {
		c.stop(websocket.StatusPolicyViolation, protocol.CloseReasonHelloFirst)
		return protocol.Hello{}, false
	}
	if hello.Protocol < protocol.MinVersion || hello.Protocol > protocol.Version {
		c.log.Warn("agent refused: protocol version", "agent_protocol", hello.Protocol, "server_protocol", protocol.Version)
		c.stop(websocket.StatusPolicyViolation, protocol.CloseReasonProtocolVersion)
		return protocol.Hello{}, false
	}
	return *hello, true
}

// readFrame reads and decodes one frame. A frame the protocol does not allow stops the
// connection with the protocol's reason; ok is false then and when the connection ended.
func (c *conn) readFrame() (string, any, bool) {
	// No context: a cancelled read context makes the library drop the TCP connection
	// without a close frame. The reader ends when the writer's close handshake completes.
	mt, data, err := c.ws.Read(context.Background())
	if err == nil && !c.pace() {
		return "", nil, false
	}
	if err != nil {
		if errors.Is(err, websocket.ErrMessageTooBig) {
			c.log.Warn("agent frame over the read limit", "limit", protocol.MaxFrameBytes)
		}
		c.stop(websocket.StatusNormalClosure, "")
		return "", nil, false
	}
	c.heard()
	if mt != websocket.MessageText {
		c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, errors.New("binary frame"))
		return "", nil, false
	}
	typ, v, err := c.decode(data)
	switch {
	case errors.Is(err, protocol.ErrUnknownType):
		c.refuse(websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType, err)
		return "", nil, false
	case err != nil:
		c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, err)
		return "", nil, false
	}
	return typ, v, true
}

func (c *conn) refuse(code websocket.StatusCode, reason string, err error) {
	c.log.Warn("agent frame refused", "reason", reason, "err", err)
	c.stop(code, reason)
}

// readLoop reads frames until the connection ends and hands each to the agent's worker, in
// wire order. It never waits on the database or the sink itself, so pongs are read
// whatever those cost; it waits only while the agent's work queue is full.
func (c *conn) readLoop() {
	for {
		typ, v, ok := c.readFrame()
		if !ok {
			return
		}
		var run func()
		var jobID string
		switch p := v.(type) {
		case *protocol.JobAccepted:
			jobID = p.JobID
			run = func() {
				c.jobReport(p.JobID, func(ctx context.Context) { c.hub.opts.Sink.JobAccepted(ctx, c.agentID, p.JobID) })
			}
		case *protocol.JobPhase:
			jobID = p.JobID
			run = func() {
				c.jobReport(p.JobID, func(ctx context.Context) {
					c.hub.opts.Sink.JobPhase(ctx, c.agentID, p.JobID, p.Phase)
					if p.Plan != nil {
						c.hub.opts.Sink.JobPlan(ctx, c.agentID, p.JobID, *p.Plan)
					}
				})
			}
		case *protocol.LogChunk:
			jobID = p.JobID
			run = func() { c.logs.add(*p) }
		case *protocol.JobResult:
			jobID = p.JobID
			run = func() {
				// The lines of a job are stored before its outcome, so whoever reads the
				// result finds the complete log.
				if c.logs.flushJob(p.JobID) && c.handleResult(*p) {
					c.offerIfIdle() // update.go
				}
			}
		case *protocol.UpdateFailed:
			if !c.st.work.push(c, frameSize(v), func() { c.updateFailed(*p) }) {
				return
			}
			continue
		case *protocol.Hello:
			c.refuse(websocket.StatusPolicyViolation, protocol.CloseReasonBadFrame, errors.New("second HELLO"))
			return
		default:
			// A server-to-agent type sent by an agent.
			c.refuse(websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType, fmt.Errorf("%s from an agent", typ))
			return
		}
		if jobID == "" {
			c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, fmt.Errorf("%s without job_id", typ))
			return
		}
		// Whose job a frame is may take a database read (frames.go), so the worker asks.
		report := run
		run = func() {
			if c.admit(v) {
				report()
			} else if l, ok := v.(*protocol.LogChunk); ok {
				c.logs.skip(*l)
			}
		}
		if !c.st.work.push(c, frameSize(v), run) {
			return
		}
	}
}

// frameSize estimates what a frame's work holds in memory, for the work queue's bound.
func frameSize(v any) int {
	switch p := v.(type) {
	case *protocol.LogChunk:
		return 64 + len(p.JobID) + len(p.Line)
	case *protocol.JobResult:
		n := 256 + len(p.Error)
		for _, s := range p.Services {
			n += 64 + len(s.Name)
			for _, l := range s.LogTail {
				n += len(l)
			}
		}
		return n
	}
	return 128
}

// jobReport counts a job the agent reports on as in flight (an agent that reconnects to a
// restarted server reports jobs this server never dispatched) and passes the report on.
func (c *conn) jobReport(jobID string, report func(ctx context.Context)) {
	h := c.hub
	if h.jobStarted(c.st, jobID) {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		h.syncStatus(ctx, c.agentID, c.st)
		cancel()
	}
	report(h.sinkCtx)
}

// handleResult hands a result to the sink and acknowledges it once the sink took it. A
// result the sink cannot record within StoreRetryFor ends the connection (see persist):
// the agent keeps it journaled and sends it again after reconnecting. false means so.
func (c *conn) handleResult(res protocol.JobResult) bool {
	h := c.hub
	if h.jobDone(c.st, res.JobID) {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		h.syncStatus(ctx, c.agentID, c.st)
		cancel()
	}
	// No timeout of its own: recording a result includes reporting it to GitHub, which
	// takes what it takes; Close cancels it.
	recorded := c.persist("record job result", res.JobID, func() error {
		return h.opts.Sink.JobResult(h.sinkCtx, c.agentID, res)
	})
	if !recorded {
		return false
	}
	if err := c.send(protocol.TypeResultAck, protocol.ResultAck{JobID: res.JobID}); err != nil {
		c.log.Info("job result recorded but not acknowledged; the agent will send it again", "job_id", res.JobID, "err", err)
	}
	return true
}

// persist runs write until it succeeds, retrying with a growing pause for up to
// StoreRetryFor while the connection lives. When it gives up on a live connection it closes
// it with StatusTryAgainLater: the agent keeps what the server has not acknowledged and
// sends it again after it reconnects, by which time the database may be back.
func (c *conn) persist(what, jobID string, write func() error) bool {
	h := c.hub
	deadline := time.Now().Add(h.opts.StoreRetryFor)
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil {
			if attempt > 1 {
				c.log.Info(what+": done after a retry", "job_id", jobID, "attempts", attempt)
			}
			return true
		}
		if attempt == 1 {
			c.log.Warn(what+": retrying", "job_id", jobID, "err", err)
		}
		if c.ctx.Err() != nil || h.sinkCtx.Err() != nil || time.Now().Add(pause).After(deadline) {
			if c.ctx.Err() == nil {
				c.log.Warn(what+": giving up; closing the connection so the agent sends it again", "job_id", jobID, "attempts", attempt, "err", err)
				c.stop(websocket.StatusTryAgainLater, protocol.CloseReasonRetryLater)
			} else {
				c.log.Info(what+": connection gone; the agent sends it again when it is back", "job_id", jobID, "err", err)
			}
			return false
		}
		select {
		case <-time.After(pause):
		case <-c.ctx.Done():
		case <-h.sinkCtx.Done():
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// writeLoop writes queued frames, pings on a ticker, and performs the close handshake
// once the connection is stopped.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	opts := c.hub.opts
	ticker := time.NewTicker(opts.PingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.ctx.Done():
			_ = c.ws.Close(c.closeCode, c.closeReason)
			return
		case frame := <-c.out:
			ctx, cancel := context.WithTimeout(context.Background(), opts.WriteTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, frame.b)
			cancel()
			if err != nil {
				c.log.Info("agent connection write failed", "err", err)
				c.stop(websocket.StatusGoingAway, "write failed")
			}
		case <-ticker.C:
			c.startPing()
		}
	}
}

// startPing pings in a goroutine of its own, at most one at a time, so a slow pong never
// holds up frames.
func (c *conn) startPing() {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	c.pings.Add(1)
	go func() {
		defer c.pings.Done()
		defer c.pinging.Store(false)
		timeout := c.hub.opts.PongTimeout
		// Not derived from c.ctx: cancelling a context in the middle of a control-frame
		// write makes the library drop the connection without the close frame.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			// A reader waiting for room in the agent's work queue reads pongs late: the
			// server is slow, not the agent. Otherwise what it read last counts.
			if c.readerWaiting.Load() || time.Since(time.Unix(0, c.lastHeard.Load())) < timeout {
				return
			}
			c.log.Warn("agent silent; closing", "pong_timeout", timeout)
			c.stop(websocket.StatusGoingAway, fmt.Sprintf("no pong within %s", timeout))
			return
		}
		c.heartbeat()
	}()
}

// heartbeat writes last_heartbeat at most every HeartbeatEvery.
func (c *conn) heartbeat() {
	if !c.registered.Load() {
		return
	}
	opts := c.hub.opts
	now := opts.Now()
	if now.Sub(time.Unix(0, c.lastTouch.Load())) < opts.HeartbeatEvery {
		return
	}
	if err := opts.Store.TouchAgent(c.ctx, c.agentID, now); err != nil {
		c.log.Warn("store agent heartbeat", "err", err)
		return
	}
	c.lastTouch.Store(now.UnixNano())
}

// finish waits for the writer (and its ping) to end the connection.
func (c *conn) finish() {
	c.stop(websocket.StatusNormalClosure, "")
	<-c.writerDone
	c.pings.Wait()
	_ = c.ws.CloseNow()
}

// teardown runs once a registered connection ended. The rest runs on the agent's worker,
// after everything the connection handed it: the last log lines are stored, and unless a
// newer connection of the agent took over, the agent goes offline and its in-flight jobs
// are forgotten. The request's context is long gone, so every call gets a fresh one.
func (c *conn) teardown() {
	c.finish()
	c.log.Info("agent connection ended", "close_code", int(c.closeCode), "close_reason", c.closeReason)
	replaced := !c.hub.unregister(c, c.st)
	c.st.work.control(func() {
		c.logs.close()
		c.stopUpdate()
		c.reportDropped()
		if replaced {
			c.log.Info("agent connection replaced")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		defer cancel()
		c.hub.disconnected(ctx, c.agentID, c.st)
	})
}
