package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/metrics"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
	"github.com/stagely/stagely/webhook/webhooktest"
)

// newMetrics labels the events the server labels: those Stagely decodes and those its App receives.
func newMetrics(t *testing.T) *metrics.Metrics {
	t.Helper()
	m, err := appmanifest.Render("https://stagely.example.com")
	if err != nil {
		t.Fatal(err)
	}
	return metrics.New(func() int { return 0 }, append(webhook.Events(), m.Events()...))
}

// refusingRecorder fails the test if a rejected request reaches the database.
type refusingRecorder struct{ t *testing.T }

func (r refusingRecorder) RecordDelivery(context.Context, store.NewDelivery) (store.Delivery, bool, error) {
	r.t.Errorf("a rejected request was recorded")
	return store.Delivery{}, false, fmt.Errorf("refused")
}

// webhookSeries scrapes /metrics and returns the stagely_webhooks_total series.
func webhookSeries(t *testing.T, m *metrics.Metrics) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	var series []string
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "stagely_webhooks_total{") {
			series = append(series, sc.Text())
		}
	}
	return series
}

// TestHandler_InventedEventNamesOfRejectedRequestsAddNoSeriesAndStayShortInLogs sends what an
// attacker would: 50 unsigned requests, each naming an event of its own, some long and with
// control characters. Before the fix this left 50 series (one per invented name) and logged
// each header in full.
func TestHandler_InventedEventNamesOfRejectedRequestsAddNoSeriesAndStayShortInLogs(t *testing.T) {
	t.Parallel()
	met := newMetrics(t)
	var logs logtest.Buffer
	secret := []byte("s")
	h := intake.NewHandler(refusingRecorder{t}, func(context.Context) ([]byte, error) { return secret, nil }, func() {},
		slog.New(slog.NewJSONHandler(&logs, nil)), met)
	long := strings.Repeat("x", 4096)
	for i := range 50 {
		r := webhooktest.Request("ping", "66666666-0000-4000-8000-000000000001", secret, []byte(`{}`))
		r.Header.Del(webhook.HeaderSignature256)
		event := fmt.Sprintf("invented_%d", i)
		if i%2 == 1 {
			event = fmt.Sprintf("evil\x1b[31m%d\n%s", i, long)
		}
		r.Header.Set(webhook.HeaderEvent, event)
		r.Header.Set(webhook.HeaderDelivery, long)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d answered %d, want 401", i, rec.Code)
		}
	}
	series := webhookSeries(t, met)
	t.Logf("series after 50 invented events: %d", len(series))
	if len(series) != 1 || !strings.Contains(series[0], `event="other"`) || !strings.Contains(series[0], `outcome="rejected"`) {
		t.Fatalf("want one series {event=\"other\",outcome=\"rejected\"}, got %d:\n%s", len(series), strings.Join(series, "\n"))
	}
	if strings.Contains(logs.String(), strings.Repeat("x", 65)) {
		t.Fatalf("a header value longer than 64 bytes reached the log")
	}
	if strings.Contains(logs.String(), `\u001b`) {
		t.Fatalf("a control character of a header reached the log")
	}
}

func TestHandler_KnownEventsKeepTheirLabel(t *testing.T) {
	t.Parallel()
	met := newMetrics(t)
	secret := []byte("s")
	h := intake.NewHandler(refusingRecorder{t}, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, slog.New(slog.DiscardHandler), met)
	for _, event := range []string{"push", "pull_request", "check_run", "check_suite", "installation", "installation_repositories", "ping"} {
		r := webhooktest.Request(event, "66666666-0000-4000-8000-000000000002", secret, []byte(`{}`))
		r.Header.Set(webhook.HeaderSignature256, "sha256="+strings.Repeat("0", 64))
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	got := strings.Join(webhookSeries(t, met), "\n")
	for _, event := range []string{"push", "pull_request", "check_run", "check_suite", "installation", "installation_repositories", "ping"} {
		if !strings.Contains(got, fmt.Sprintf(`event=%q`, event)) {
			t.Errorf("no series for %s:\n%s", event, got)
		}
	}
}

// acceptingRecorder records every delivery as new.
type acceptingRecorder struct{ n atomic.Int64 }

func (r *acceptingRecorder) RecordDelivery(_ context.Context, d store.NewDelivery) (store.Delivery, bool, error) {
	return store.Delivery{ID: r.n.Add(1), DeliveryID: d.DeliveryID}, true, nil
}

// TestHandler_BodiesBeyondTheReadBudgetAreRefusedUnreadAndASlowBodyIsCutAtItsDeadline holds the
// whole read budget with one body trickled a byte at a time: a signed delivery arriving
// meanwhile is answered 503 with Retry-After, unread, within the budget wait; the slow body is
// answered 408 at its read deadline, and then deliveries are accepted again.
func TestHandler_BodiesBeyondTheReadBudgetAreRefusedUnreadAndASlowBodyIsCutAtItsDeadline(t *testing.T) {
	t.Parallel()
	secret := []byte("s")
	rec := &acceptingRecorder{}
	h := intake.NewHandler(rec, func(context.Context) ([]byte, error) { return secret, nil }, func() {}, slog.New(slog.DiscardHandler), newMetrics(t)).
		WithLimits(intake.Limits{MaxBody: 1 << 20, ReadBudget: 1 << 20, ReadTimeout: 2 * time.Second, BudgetWait: 100 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()

	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: 99999999-0000-4000-8000-000000000001\r\n"+
		"X-Hub-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n{", strings.Repeat("0", 64), 1<<20)
	slowAnswer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(slow).ReadString('\n')
		slowAnswer <- strings.TrimSpace(line)
	}()

	deliver := func(id string) *http.Response {
		t.Helper()
		body := []byte(`{"zen":"z","hook_id":1}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set(webhook.HeaderEvent, "ping")
		req.Header.Set(webhook.HeaderDelivery, id)
		req.Header.Set(webhook.HeaderSignature256, webhook.Sign(secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Until the slow body holds the budget, a delivery may still get in; poll until one is refused.
	deadline := time.Now().Add(30 * time.Second)
	var refused *http.Response
	for i := 0; refused == nil; i++ {
		if resp := deliver(fmt.Sprintf("99999999-0000-4000-8000-1%011d", i)); resp.StatusCode == http.StatusServiceUnavailable {
			refused = resp
		} else if time.Now().After(deadline) {
			t.Fatalf("no delivery was refused while a slow body held the budget; last answer %d", resp.StatusCode)
		}
	}
	if refused.Header.Get("Retry-After") != intake.RetryAfter {
		t.Fatalf("503 without Retry-After: %v", refused.Header)
	}
	select {
	case got := <-slowAnswer:
		if !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Fatalf("the slow body was answered %q, want 408", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the slow body was not cut off within 60s of a 2s read deadline")
	}
	if resp := deliver("99999999-0000-4000-8000-200000000000"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the slow body was cut, a delivery was answered %d", resp.StatusCode)
	}
}

func TestHandler_AnswersWithoutASecret503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		secret     func(context.Context) ([]byte, error)
		retryAfter string
	}{
		{"no App yet", func(context.Context) ([]byte, error) { return nil, appcreds.ErrNoApp }, ""},
		{"empty secret", func(context.Context) ([]byte, error) { return nil, nil }, ""},
		{"secret unreadable (database away)", func(context.Context) ([]byte, error) { return nil, errors.New("connection refused") }, intake.RetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := intake.NewHandler(refusingRecorder{t}, tt.secret, func() {}, slog.New(slog.DiscardHandler), newMetrics(t))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, webhooktest.Request("ping", "bbbbbbbb-0000-4000-8000-000000000001", []byte("s"), []byte(`{}`)))
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Fatalf("answered %d with Retry-After %q, want 503 with %q", rec.Code, rec.Header().Get("Retry-After"), tt.retryAfter)
			}
		})
	}
}

// TestHandler_RequestsAnsweredUnreadAreClosedAtOnceHoweverSlowTheirBody: a request answered
// without its body being read gets its answer and its connection closed at once, though its
// sender trickles a small body a byte every 100 ms. Before, net/http went on reading up to
// 256 KiB of the rest of the body with no deadline, to keep the connection: the sender held
// the connection, and a goroutine, for as long as it liked.
func TestHandler_RequestsAnsweredUnreadAreClosedAtOnceHoweverSlowTheirBody(t *testing.T) {
	t.Parallel()
	secret := []byte("s")
	known := func(context.Context) ([]byte, error) { return secret, nil }
	wellFormed := "sha256=" + strings.Repeat("0", 64)
	tests := []struct {
		name       string
		signature  string
		secret     func(context.Context) ([]byte, error)
		holdBudget bool
		want       string
	}{
		{"malformed signature", "junk", known, false, "HTTP/1.1 401"},
		{"no signature", "", known, false, "HTTP/1.1 401"},
		{"no App yet", wellFormed, func(context.Context) ([]byte, error) { return nil, appcreds.ErrNoApp }, false, "HTTP/1.1 503"},
		{"secret unreadable", wellFormed, func(context.Context) ([]byte, error) { return nil, errors.New("connection refused") }, false, "HTTP/1.1 503"},
		{"read budget taken", wellFormed, known, true, "HTTP/1.1 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := intake.NewHandler(&acceptingRecorder{}, tt.secret, func() {}, slog.New(slog.DiscardHandler), newMetrics(t)).
				WithLimits(intake.Limits{MaxBody: 1 << 20, ReadBudget: 1 << 20, ReadTimeout: 10 * time.Minute, BudgetWait: 100 * time.Millisecond})
			srv := httptest.NewServer(h)
			defer srv.Close()
			if tt.holdBudget {
				holder := dialSlow(t, srv, wellFormed, 1<<20)
				defer holder.Close()
				waitForBusy(t, srv, secret)
			}
			conn := dialSlow(t, srv, tt.signature, 200_000)
			defer conn.Close()
			start := time.Now()
			ended := make(chan string, 1)
			go func() {
				r := bufio.NewReader(conn)
				line, _ := r.ReadString('\n')
				_, _ = io.Copy(io.Discard, r)
				ended <- strings.TrimSpace(line)
			}()
			// The body would take 200 000 × 100 ms to arrive: only the server closing ends this.
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for range tick.C {
					if _, err := conn.Write([]byte{' '}); err != nil {
						return
					}
				}
			}()
			select {
			case got := <-ended:
				if !strings.HasPrefix(got, tt.want) {
					t.Fatalf("answered %q, want %s", got, tt.want)
				}
				t.Logf("answered %q and closed after %s", got, time.Since(start).Round(time.Millisecond))
			case <-time.After(30 * time.Second):
				t.Fatal("the connection of a request answered unread was still open 30s later")
			}
		})
	}
}

// dialSlow opens a connection to srv and sends the headers of a webhook POST declaring a body
// of length bytes, and the body's first byte.
func dialSlow(t *testing.T, srv *httptest.Server, signature string, length int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sig := ""
	if signature != "" {
		sig = "X-Hub-Signature-256: " + signature + "\r\n"
	}
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: 99999999-0000-4000-8000-000000000009\r\n"+
		"%sContent-Length: %d\r\n\r\n{", sig, length); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitForBusy sends small signed deliveries until one is refused 503: the budget is then held.
func waitForBusy(t *testing.T, srv *httptest.Server, secret []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		r := webhooktest.Request("ping", fmt.Sprintf("99999999-0000-4000-8000-3%011d", i), secret, []byte(`{"zen":"z","hook_id":1}`))
		req, _ := http.NewRequest(http.MethodPost, srv.URL, r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery was refused within 30s while a slow body held the budget; last answer %d", resp.StatusCode)
		}
	}
}
