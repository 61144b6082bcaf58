package github

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	defaultMaxRetries = 4
	// backoffBase and backoffCap shape the exponential backoff used when GitHub names no wait.
	backoffBase = time.Second
	backoffCap  = 30 * time.Second
	// maxWait is the longest single wait we accept; a longer Retry-After or reset (a spent primary
	// rate limit) is returned to the caller as an error instead of stalling a deploy for an hour.
	maxWait = 60 * time.Second
	// secondaryWait is GitHub's advice when a secondary limit names no wait: "wait for at least one minute".
	secondaryWait = time.Minute
	// peekLimit bounds how much of a 403 body is read to recognise a secondary rate limit.
	peekLimit = 64 << 10
)

// retryTransport retries GitHub calls that failed for reasons that pass: 429 and rate-limited
// 403s (GitHub refuses those unread), and 5xx and network errors of the calls that may be sent
// twice (repeatable). A write answered 5xx may have been carried out all the same: the write's
// own code checks GitHub before sending it again (writes.go). It logs method, path and status,
// never headers (Authorization carries the JWT or an installation token) and never the query
// string.
type retryTransport struct {
	next       http.RoundTripper
	log        *slog.Logger
	maxRetries int
	sleep      func(context.Context, time.Duration) error
	now        func() time.Time
}

func newRetryTransport(next http.RoundTripper, log *slog.Logger, maxRetries int, sleep func(context.Context, time.Duration) error, now func() time.Time) *retryTransport {
	return &retryTransport{next: next, log: log, maxRetries: maxRetries, sleep: sleep, now: now}
}

// RoundTrip sends req, and sends it again while the answer says a later attempt may succeed.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(ctx)
			if req.Body != nil && req.Body != http.NoBody {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("replay body of %s %s: %w", req.Method, logPath(req), err)
				}
				r.Body = body
			}
		}
		start := time.Now()
		resp, err := t.next.RoundTrip(r)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.log.DebugContext(ctx, "github call", "method", req.Method, "path", logPath(req),
			"status", status, "attempt", attempt+1, "duration", time.Since(start).Round(time.Millisecond))
		wait, reason := t.retryAfter(req, resp, err, attempt)
		if reason == "" || attempt >= t.maxRetries || !replayable {
			return resp, err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, peekLimit))
			resp.Body.Close()
		}
		t.log.WarnContext(ctx, "github call will be retried", "method", req.Method, "path", logPath(req),
			"status", status, "reason", reason, "wait", wait, "attempt", attempt+1)
		if err := t.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("wait to retry %s %s: %w", req.Method, logPath(req), err)
		}
	}
}

// repeatable says whether a call may be sent again after an answer that leaves open whether
// GitHub carried it out (a 5xx, a lost connection): reads, and minting an installation token,
// since a second token harms nothing.
func repeatable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		return strings.HasSuffix(req.URL.Path, "/access_tokens")
	default:
		return false
	}
}

// logPathKey carries the path to log in place of a request's own, for paths that hold a secret.
type logPathKey struct{}

// withLogPath makes the transport log path for the calls made with ctx.
func withLogPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, logPathKey{}, path)
}

// logPath is what the log and errors show of a request's path.
func logPath(req *http.Request) string {
	if p, ok := req.Context().Value(logPathKey{}).(string); ok {
		return p
	}
	return req.URL.Path
}

// retryAfter says why and after how long the call should be tried again; an empty reason means never.
func (t *retryTransport) retryAfter(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, string) {
	if err != nil {
		// A write that died on the wire may have been applied: only repeatable calls are resent.
		if req.Context().Err() != nil || !repeatable(req) {
			return 0, ""
		}
		return backoff(attempt), "network error"
	}
	named, hasNamed := t.namedWait(resp.Header)
	var wait time.Duration
	var reason string
	switch {
	case resp.StatusCode >= 500:
		if !repeatable(req) {
			return 0, ""
		}
		wait, reason = backoff(attempt), "server error"
	case resp.StatusCode == http.StatusTooManyRequests:
		wait, reason = backoff(attempt), "rate limited"
	case resp.StatusCode == http.StatusForbidden:
		if !hasNamed && !peekSecondaryLimit(resp) {
			return 0, ""
		}
		wait, reason = secondaryWait, "rate limited"
	default:
		return 0, ""
	}
	if hasNamed {
		wait = named
	}
	if wait > maxWait {
		return 0, ""
	}
	return wait, reason
}

// namedWait reads the wait GitHub asks for: Retry-After (seconds or an HTTP date), else the
// primary limit's reset time when no requests remain.
func (t *retryTransport) namedWait(h http.Header) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second, true
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(at.Sub(t.now()), 0), true
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			// The reset is whole seconds; a second more avoids arriving just before it.
			return max(time.Unix(reset, 0).Sub(t.now())+time.Second, time.Second), true
		}
	}
	return 0, false
}

// peekSecondaryLimit reads a 403 body (it is small) and puts it back for the caller.
func peekSecondaryLimit(resp *http.Response) bool {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, peekLimit))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), rest), rest}
	return bytes.Contains(bytes.ToLower(b), []byte("secondary rate limit"))
}

// backoff is capped exponential backoff with equal jitter: half fixed, half random, so that
// clients that failed together do not retry together.
func backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 10 {
		d = min(backoffBase<<attempt, backoffCap)
	}
	half := d / 2
	return half + rand.N(half+1)
}
