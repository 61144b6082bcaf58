package conn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
)

// refusedError is a handshake the server answered with 401 or 403: the token is wrong
// or revoked, and only a person can fix that.
type refusedError struct{ status int }

func (e *refusedError) Error() string {
	return fmt.Sprintf("server refused the token (HTTP %d)", e.status)
}

// serverClosedError is a close frame from the server, with its reason.
type serverClosedError struct {
	code   websocket.StatusCode
	reason string
}

func (e *serverClosedError) Error() string {
	return fmt.Sprintf("server closed the connection: %s (%d)", e.reason, e.code)
}

// slow reports whether the server closed for a reason a redial cannot fix soon.
func (e *serverClosedError) slow() bool {
	return e.reason == protocol.CloseReasonProtocolVersion || e.reason == protocol.CloseReasonTokenRevoked
}

// connectLoop dials, serves and redials until ctx ends.
func (c *Client) connectLoop(ctx context.Context) {
	attempt, refused := 0, 0
	for {
		lived, err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if lived >= c.opts.ResetAfter {
			attempt = 0
		}
		var delay time.Duration
		var rerr *refusedError
		var cerr *serverClosedError
		switch {
		case errors.As(err, &rerr):
			delay = c.opts.RefusedBackoff.Delay(refused, c.opts.Rand())
			refused++
			c.log.Error("token refused: check STAGELY_TOKEN or rotate it in the dashboard",
				"http_status", rerr.status, "attempt", refused, "retry_in", delay.Round(time.Second))
		case errors.As(err, &cerr) && cerr.slow():
			delay = c.opts.RefusedBackoff.Delay(refused, c.opts.Rand())
			refused++
			c.log.Error("server will not serve this agent: "+cerr.reason,
				"agent_version", c.opts.AgentVersion, "protocol", protocol.Version, "retry_in", delay.Round(time.Second))
		default:
			refused = 0
			delay = c.opts.Backoff.Delay(attempt, c.opts.Rand())
			attempt++
			c.log.Warn("disconnected from server", "err", err, "connected_for", lived.Round(time.Millisecond),
				"attempt", attempt, "retry_in", delay.Round(time.Millisecond))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session runs one connection: dial, HELLO, then a reader, a writer (the only goroutine
// that writes frames), a pinger and a shutdown watcher. The first of them to fail tears
// the whole connection down. It returns how long the connection was up.
func (c *Client) session(ctx context.Context) (time.Duration, error) {
	// Asked before dialling: nothing reads the connection until HELLO is sent, so a slow
	// `docker version` after the dial would leave the server's pings unanswered.
	vctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	docker, compose := c.opts.Versions(vctx)
	cancel()
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	ws, resp, err := websocket.Dial(dctx, c.wsURL, &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + c.opts.Token}},
	})
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return 0, &refusedError{status: resp.StatusCode}
		}
		return 0, fmt.Errorf("dial %s: %w", c.wsURL, err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(protocol.MaxFrameBytes)
	up := time.Now()

	if err := c.sendHello(ctx, ws, docker, compose); err != nil {
		return 0, err
	}

	// The goroutines' context does not derive from ctx: on shutdown the watcher closes
	// the connection with a proper close frame instead of cutting it.
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	defer scancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		scancel()
	}
	spawn := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(sctx); err != nil {
				fail(err)
				return
			}
			scancel()
		}()
	}
	spawn(func(sctx context.Context) error { return c.readLoop(sctx, ws) })
	spawn(func(sctx context.Context) error { return c.writeLoop(sctx, ws) })
	spawn(func(sctx context.Context) error { return c.pingLoop(sctx, ws) })
	spawn(func(sctx context.Context) error {
		select {
		case <-sctx.Done():
			return nil
		case <-ctx.Done():
			_ = ws.Close(websocket.StatusGoingAway, "agent shutting down")
			return ctx.Err()
		}
	})
	wg.Wait()
	if firstErr == nil {
		firstErr = errors.New("connection ended")
	}
	return time.Since(up), firstErr
}

func (c *Client) sendHello(ctx context.Context, ws *websocket.Conn, docker, compose string) error {
	results, held := c.forHello()
	hello := protocol.Hello{
		AgentVersion:   c.opts.AgentVersion,
		Protocol:       protocol.Version,
		Hostname:       c.opts.Hostname,
		Docker:         docker,
		Compose:        compose,
		UnackedResults: results,
		Jobs:           held,
	}
	c.helloUpdate(&hello)
	hello.Features = append(hello.Features, c.opts.Features...)
	b, err := protocol.Encode(protocol.TypeHello, hello)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send HELLO: %w", err)
	}
	c.log.Info("connected to server", "url", c.wsURL, "unacked_results", len(hello.UnackedResults), "jobs", len(held))
	return nil
}

// readLoop handles the server's frames. A frame the agent cannot make sense of closes
// the connection with the protocol's reason; the connect loop then redials.
func (c *Client) readLoop(ctx context.Context, ws *websocket.Conn) error {
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			switch {
			case errors.As(err, &ce):
				return &serverClosedError{code: ce.Code, reason: ce.Reason}
			case errors.Is(err, websocket.ErrMessageTooBig):
				// The library has already closed with StatusMessageTooBig.
				return fmt.Errorf("server frame larger than %d bytes: %w", protocol.MaxFrameBytes, err)
			}
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.MessageText {
			_ = ws.Close(websocket.StatusUnsupportedData, protocol.CloseReasonBadFrame)
			return errors.New(protocol.CloseReasonBadFrame + ": binary frame from server")
		}
		mtyp, v, err := protocol.Decode(b)
		if errors.Is(err, protocol.ErrUnknownType) {
			_ = ws.Close(websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType)
			return fmt.Errorf("server sent %w", err)
		}
		if err != nil {
			_ = ws.Close(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame)
			return fmt.Errorf("server sent %w", err)
		}
		switch v := v.(type) {
		case *protocol.Deploy:
			if v.JobID == "" {
				_ = ws.Close(websocket.StatusInvalidFramePayloadData, protocol.CloseReasonBadFrame)
				return errors.New(protocol.CloseReasonBadFrame + ": DEPLOY without job_id")
			}
			c.onDeploy(*v)
		case *protocol.Cancel:
			c.onCancel(v.JobID)
		case *protocol.ResultAck:
			c.onAck(v.JobID)
		case *protocol.LogAck:
			c.onLogAck(*v)
		case *protocol.Update:
			c.onUpdate(*v)
		default:
			// A frame only agents send: the server has no business sending it here.
			_ = ws.Close(websocket.StatusUnsupportedData, protocol.CloseReasonUnknownType)
			return fmt.Errorf("server sent %w: %s is an agent-to-server type", protocol.ErrUnknownType, mtyp)
		}
	}
}

// writeLoop is the connection's only writer. A frame leaves the outbox only once
// written, so what a dropped connection did not carry goes out on the next one.
func (c *Client) writeLoop(ctx context.Context, ws *websocket.Conn) error {
	for {
		typ, payload, ok := c.out.head()
		if !ok {
			select {
			case <-c.out.notify:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		b, err := protocol.Encode(typ, payload)
		if err != nil {
			c.log.Error("drop unencodable frame", "type", typ, "err", err)
			c.out.pop()
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
		err = ws.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("write %s: %w", typ, err)
		}
		c.out.pop()
	}
}

// pingLoop proves the server is still there; a missing pong tears the connection down,
// since a half-open TCP connection otherwise looks alive for a long time. The first ping
// goes right after HELLO: the server reads no frame, so answers no ping, until it has
// accepted the HELLO, and a refusal's close frame reaches the agent before any pong would.
// Its pong is the server's acceptance.
func (c *Client) pingLoop(ctx context.Context, ws *websocket.Conn) error {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		pctx, cancel := context.WithTimeout(ctx, c.opts.PongTimeout)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("no pong within %s: %w", c.opts.PongTimeout, err)
		}
		if first {
			c.accepted()
		}
	}
}
