package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
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
	src := keyOf(clientAddr(r, h.opts.TrustedProxies))
	agentID, err := h.authenticate(r.Context(), r.Header.Get("Authorization"), src)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{status: http.StatusInternalServerError, message: msgUnavailable}
		}
		if he.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(he.retryAfter.Seconds()))))
		}
		writeJSONError(w, he.status, he.message)
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
	out     chan []byte
	st      *agentState // set once registered

	ctx    context.Context
	cancel context.CancelFunc

	stopOnce    sync.Once
	closeCode   websocket.StatusCode
	closeReason string

	lastHeard  atomic.Int64 // monotonic-free wall nanoseconds of the last frame, ping or pong
	lastTouch  atomic.Int64 // Options.Now nanoseconds of the last heartbeat written
	registered atomic.Bool
	pinging    atomic.Bool
	pings      sync.WaitGroup
	writerDone chan struct{}

	logs *logBuffer
	gate frameGate   // frames.go
	upd  updateState // update.go
}

func newConn(h *Hub, agentID int64) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		hub:        h,
		agentID:    agentID,
		log:        h.log.With("agent_id", agentID),
		out:        make(chan []byte, h.opts.OutboundQueue),
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
func (c *conn) trySend(frame []byte) error {
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
	case c.out <- frame:
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
	st, ok := h.register(c)
	if !ok {
		c.stop(websocket.StatusGoingAway, protocol.CloseReasonShutdown)
		c.finish()
		return
	}
	c.st = st
	defer c.teardown()
	if !c.connected(hello) {
		return
	}
	c.readLoop()
}

// connected records the HELLO, hands the results it carries to the sink and tells the
// sink the agent is here, all under the agent's lifeMu; false means the connection ended.
func (c *conn) connected(hello protocol.Hello) bool {
	h := c.hub
	c.st.lifeMu.Lock()
	defer c.st.lifeMu.Unlock()
	c.lastTouch.Store(h.opts.Now().UnixNano())
	if err := h.markConnected(c.ctx, c, c.st, hello); err != nil {
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
		return false
	}
	c.registered.Store(true)
	c.log.Info("agent connected", "version", hello.AgentVersion, "hostname", hello.Hostname,
		"unacked_results", len(hello.UnackedResults))
	for _, res := range hello.UnackedResults {
		if res.JobID != "" {
			c.handleResult(res)
		}
	}
	h.opts.Sink.AgentConnected(c.ctx, c.agentID, hello)
	c.updateOnConnect(hello)
	return true
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
	if hello.Protocol != protocol.Version {
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

// readLoop handles frames in wire order until the connection ends.
func (c *conn) readLoop() {
	h := c.hub
	for {
		typ, v, ok := c.readFrame()
		if !ok {
			return
		}
		if !c.admit(v) {
			continue
		}
		switch p := v.(type) {
		case *protocol.JobAccepted:
			if !c.jobFrame(typ, p.JobID) {
				return
			}
			h.opts.Sink.JobAccepted(c.ctx, c.agentID, p.JobID)
		case *protocol.JobPhase:
			if !c.jobFrame(typ, p.JobID) {
				return
			}
			h.opts.Sink.JobPhase(c.ctx, c.agentID, p.JobID, p.Phase)
		case *protocol.LogChunk:
			if p.JobID == "" {
				c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, errors.New("LOG_CHUNK without job_id"))
				return
			}
			c.logs.add(*p)
		case *protocol.JobResult:
			if p.JobID == "" {
				c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, errors.New("JOB_RESULT without job_id"))
				return
			}
			// The lines of a job are stored before its outcome, so whoever reads the
			// result finds the complete log.
			c.logs.flushJob(p.JobID)
			c.handleResult(*p)
			c.offerIfIdle()
		case *protocol.UpdateFailed:
			c.updateFailed(*p)
		case *protocol.Hello:
			c.refuse(websocket.StatusPolicyViolation, protocol.CloseReasonBadFrame, errors.New("second HELLO"))
			return
		default:
			// A server-to-agent type sent by an agent.
			c.refuse(websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType, fmt.Errorf("%s from an agent", typ))
			return
		}
	}
}

// jobFrame checks a job frame's id and counts the job as in flight: an agent that reconnects
// to a restarted server reports jobs this server never dispatched.
func (c *conn) jobFrame(typ, jobID string) bool {
	if jobID == "" {
		c.refuse(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame, fmt.Errorf("%s without job_id", typ))
		return false
	}
	if c.hub.jobStarted(c.st, jobID) {
		c.hub.syncStatus(c.ctx, c.agentID, c.st)
	}
	return true
}

// handleResult hands a result to the sink and acknowledges it only when the sink took it;
// otherwise the agent keeps it journaled and repeats it in its next HELLO.
func (c *conn) handleResult(res protocol.JobResult) {
	h := c.hub
	if h.jobDone(c.st, res.JobID) {
		h.syncStatus(c.ctx, c.agentID, c.st)
	}
	if err := h.opts.Sink.JobResult(c.ctx, c.agentID, res); err != nil {
		c.log.Warn("job result not recorded; the agent will send it again", "job_id", res.JobID, "err", err)
		return
	}
	if err := c.send(protocol.TypeResultAck, protocol.ResultAck{JobID: res.JobID}); err != nil {
		c.log.Info("job result recorded but not acknowledged; the agent will send it again", "job_id", res.JobID, "err", err)
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
			err := c.ws.Write(ctx, websocket.MessageText, frame)
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
			// A reader busy with a slow store write reads pongs late; what it read last counts.
			if time.Since(time.Unix(0, c.lastHeard.Load())) < timeout {
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

// teardown runs once a registered connection ended: the last log lines are stored, and
// unless a newer connection of the agent took over, the agent goes offline and the sink
// learns which jobs were left without a result. The request's context is long gone, so
// every call gets a fresh one.
func (c *conn) teardown() {
	c.finish()
	c.log.Info("agent connection ended", "close_code", int(c.closeCode), "close_reason", c.closeReason)
	c.logs.close()
	c.stopUpdate()
	c.reportDropped()
	if !c.hub.unregister(c, c.st) {
		c.log.Info("agent connection replaced")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	c.hub.disconnected(ctx, c.agentID, c.st)
}
