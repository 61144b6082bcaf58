// Package agenttest is what tests of the agent share. Server is an in-process server that
// speaks the agent protocol, for tests of the agent and of anything that needs a scriptable
// peer: it checks the bearer token, records every connection attempt, HELLO and frame, lets
// the test send DEPLOY, CANCEL and RESULT_ACK, and can drop connections or play a restarting
// server. LogBuffer captures the agent's log and waits for a message in it.
package agenttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
)

// Options configures a Server.
type Options struct {
	// Token is the bearer token the server accepts.
	Token string
	// AutoAck answers every JOB_RESULT (and every result in HELLO) with RESULT_ACK, and
	// every LOG_CHUNK with LOG_ACK.
	AutoAck bool
	// RefuseAfterHello, when set, closes every connection with this reason right after
	// reading its HELLO, as the real server refuses a duplicate agent.
	RefuseAfterHello string
}

// Attempt is one request to /agent/ws.
type Attempt struct {
	At time.Time
	// Status is the HTTP status answered: 101 for an upgrade, 401 for a refused token,
	// 503 while the server plays restarting.
	Status int
}

// Frame is one frame an agent sent.
type Frame struct {
	// Conn numbers the connection it came on, from 1.
	Conn int
	At   time.Time
	Type string
	// Payload is the decoded payload (*protocol.Hello, *protocol.LogChunk, ...).
	Payload any
	Raw     []byte
}

// Closure is how one connection ended, as seen by the server.
type Closure struct {
	Conn int
	// Code and Reason are the agent's close frame; Code is -1 if it sent none.
	Code   websocket.StatusCode
	Reason string
	Err    error
}

// Server is the test server; its methods are safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	opts Options

	// done is closed by Close; a stalled connection wakes on it.
	done      chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	changed   chan struct{}
	refuse    bool
	downUntil time.Time
	attempts  []Attempt
	frames    []Frame
	closures  []Closure
	conns     map[int]*websocket.Conn
	lastConn  int
	stallNext time.Duration
}

// New starts a server and stops it when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{opts: opts, done: make(chan struct{}), changed: make(chan struct{}), conns: map[int]*websocket.Conn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /agent/ws", s.handle)
	s.srv = httptest.NewServer(mux)
	tb.Cleanup(s.Close)
	return s
}

// URL is the server's base URL, the agent's server_url.
func (s *Server) URL() string { return s.srv.URL }

// Close drops every connection and stops the server.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.Drop()
	s.srv.Close()
}

// SetRefuse makes the server answer 401 to every handshake while on.
func (s *Server) SetRefuse(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = on
}

// Restart closes every connection with StatusGoingAway and answers 503 for d.
func (s *Server) Restart(d time.Duration) {
	s.mu.Lock()
	s.downUntil = time.Now().Add(d)
	s.mu.Unlock()
	s.closeAll(func(c *websocket.Conn) { _ = c.Close(websocket.StatusGoingAway, protocol.CloseReasonShutdown) })
}

// StallNext makes the next connection stop reading for d after its HELLO (or until Close),
// so the agent's pings go unanswered, as with a server that hangs or a half-open connection.
func (s *Server) StallNext(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallNext = d
}

// Drop cuts every connection without a close frame, like a lost network.
func (s *Server) Drop() {
	s.closeAll(func(c *websocket.Conn) { _ = c.CloseNow() })
}

// CloseConn closes the current connections with a status and reason.
func (s *Server) CloseConn(code websocket.StatusCode, reason string) {
	s.closeAll(func(c *websocket.Conn) { _ = c.Close(code, reason) })
}

func (s *Server) closeAll(f func(*websocket.Conn)) {
	s.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { f(c) })
	}
	wg.Wait()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status := http.StatusSwitchingProtocols
	switch {
	case time.Now().Before(s.downUntil):
		status = http.StatusServiceUnavailable
	case s.refuse || r.Header.Get("Authorization") != "Bearer "+s.opts.Token:
		status = http.StatusUnauthorized
	}
	s.attempts = append(s.attempts, Attempt{At: time.Now(), Status: status})
	s.notifyLocked()
	s.mu.Unlock()
	if status != http.StatusSwitchingProtocols {
		http.Error(w, http.StatusText(status), status)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(protocol.MaxFrameBytes)
	s.mu.Lock()
	s.lastConn++
	id := s.lastConn
	s.conns[id] = c
	stall := s.stallNext
	s.stallNext = 0
	s.notifyLocked()
	s.mu.Unlock()

	err = s.serve(r.Context(), id, c, stall)

	cl := Closure{Conn: id, Code: websocket.CloseStatus(err), Err: err}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		cl.Reason = ce.Reason
	}
	s.mu.Lock()
	delete(s.conns, id)
	s.closures = append(s.closures, cl)
	s.notifyLocked()
	s.mu.Unlock()
	_ = c.CloseNow()
}

func (s *Server) serve(ctx context.Context, id int, c *websocket.Conn, stall time.Duration) error {
	first := true
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return err
		}
		typ, v, err := protocol.Decode(b)
		if err != nil {
			reason := protocol.CloseReasonBadFrame
			if errors.Is(err, protocol.ErrUnknownType) {
				reason = protocol.CloseReasonUnknownType
			}
			_ = c.Close(websocket.StatusPolicyViolation, reason)
			return err
		}
		if first {
			first = false
			h, ok := v.(*protocol.Hello)
			if !ok {
				_ = c.Close(websocket.StatusPolicyViolation, protocol.CloseReasonHelloFirst)
				return errors.New(protocol.CloseReasonHelloFirst)
			}
			if h.Protocol != protocol.Version {
				_ = c.Close(websocket.StatusPolicyViolation, protocol.CloseReasonProtocolVersion)
				return errors.New(protocol.CloseReasonProtocolVersion)
			}
		}
		s.mu.Lock()
		s.frames = append(s.frames, Frame{Conn: id, At: time.Now(), Type: typ, Payload: v, Raw: b})
		s.notifyLocked()
		s.mu.Unlock()
		if reason := s.opts.RefuseAfterHello; reason != "" {
			_ = c.Close(websocket.StatusPolicyViolation, reason)
			return errors.New(reason)
		}
		if stall > 0 {
			// Not reading means not answering pings either.
			select {
			case <-time.After(stall):
			case <-s.done:
			}
			stall = 0
		}
		if !s.opts.AutoAck {
			continue
		}
		var acks []string
		switch v := v.(type) {
		case *protocol.Hello:
			for _, r := range v.UnackedResults {
				acks = append(acks, r.JobID)
			}
		case *protocol.JobResult:
			acks = append(acks, v.JobID)
		case *protocol.LogChunk:
			if err := s.write(ctx, c, protocol.TypeLogAck, protocol.LogAck{JobID: v.JobID, Seq: v.Seq}); err != nil {
				return err
			}
		}
		for _, jobID := range acks {
			if err := s.write(ctx, c, protocol.TypeResultAck, protocol.ResultAck{JobID: jobID}); err != nil {
				return err
			}
		}
	}
}

func (s *Server) write(ctx context.Context, c *websocket.Conn, typ string, payload any) error {
	b, err := protocol.Encode(typ, payload)
	if err != nil {
		return err
	}
	return s.writeRaw(ctx, c, b)
}

func (s *Server) writeRaw(ctx context.Context, c *websocket.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}

// current returns the newest open connection.
func (s *Server) current() (*websocket.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[s.lastConn]
	if !ok {
		return nil, errors.New("agenttest: no agent connected")
	}
	return c, nil
}

// Send writes one frame to the newest connection.
func (s *Server) Send(ctx context.Context, typ string, payload any) error {
	b, err := protocol.Encode(typ, payload)
	if err != nil {
		return err
	}
	return s.SendRaw(ctx, b)
}

// SendRaw writes arbitrary bytes as one text frame to the newest connection.
func (s *Server) SendRaw(ctx context.Context, b []byte) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return s.writeRaw(ctx, c, b)
}

// Deploy sends DEPLOY.
func (s *Server) Deploy(ctx context.Context, d protocol.Deploy) error {
	return s.Send(ctx, protocol.TypeDeploy, d)
}

// Cancel sends CANCEL.
func (s *Server) Cancel(ctx context.Context, jobID string) error {
	return s.Send(ctx, protocol.TypeCancel, protocol.Cancel{JobID: jobID})
}

// Ack sends RESULT_ACK.
func (s *Server) Ack(ctx context.Context, jobID string) error {
	return s.Send(ctx, protocol.TypeResultAck, protocol.ResultAck{JobID: jobID})
}

// Attempts returns every handshake so far.
func (s *Server) Attempts() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// Frames returns every frame received so far, in arrival order.
func (s *Server) Frames() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// Closures returns how each finished connection ended.
func (s *Server) Closures() []Closure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.closures)
}

// Hellos returns the HELLO of every connection, in order.
func (s *Server) Hellos() []protocol.Hello {
	var out []protocol.Hello
	for _, f := range s.Frames() {
		if h, ok := f.Payload.(*protocol.Hello); ok {
			out = append(out, *h)
		}
	}
	return out
}

// Results returns every result the agent delivered, from JOB_RESULT frames and from
// HELLO's unacked_results, in arrival order.
func (s *Server) Results() []protocol.JobResult {
	var out []protocol.JobResult
	for _, f := range s.Frames() {
		switch v := f.Payload.(type) {
		case *protocol.Hello:
			out = append(out, v.UnackedResults...)
		case *protocol.JobResult:
			out = append(out, *v)
		}
	}
	return out
}

// Logs returns the LOG_CHUNKs of one job in arrival order, as the server stores them: a
// line sent again after a reconnect (a seq seen before) is left out. Frames has them all.
func (s *Server) Logs(jobID string) []protocol.LogChunk {
	var out []protocol.LogChunk
	seen := map[int64]bool{}
	for _, f := range s.Frames() {
		if l, ok := f.Payload.(*protocol.LogChunk); ok && l.JobID == jobID && !seen[l.Seq] {
			seen[l.Seq] = true
			out = append(out, *l)
		}
	}
	return out
}

// Connected reports whether an agent connection is open.
func (s *Server) Connected() bool {
	_, err := s.current()
	return err == nil
}

// Wait blocks until cond holds or ctx ends; cond is re-checked after every recorded event.
func (s *Server) Wait(ctx context.Context, cond func(*Server) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("agenttest: condition not met: %w", context.Cause(ctx))
		}
	}
}

// WaitFrame blocks until a frame matching match arrives (or already has) and returns it.
func (s *Server) WaitFrame(ctx context.Context, match func(Frame) bool) (Frame, error) {
	var found Frame
	err := s.Wait(ctx, func(s *Server) bool {
		for _, f := range s.Frames() {
			if match(f) {
				found = f
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitConnected blocks until the n-th connection has sent its HELLO.
func (s *Server) WaitConnected(ctx context.Context, n int) (protocol.Hello, error) {
	var h protocol.Hello
	err := s.Wait(ctx, func(s *Server) bool {
		hs := s.Hellos()
		if len(hs) >= n {
			h = hs[n-1]
			return true
		}
		return false
	})
	return h, err
}
