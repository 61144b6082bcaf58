package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
)

// startServer runs the whole server in-process, as main does, on a free loopback port with
// env added to a fresh database and key. It returns the server's address and its log, and
// stops the server when the test ends.
func startServer(t *testing.T, env map[string]string) (addr string, logs *logtest.Buffer) {
	t.Helper()
	full := map[string]string{
		"STAGELY_DATABASE_URL": storetest.NewDatabase(t),
		"STAGELY_SECRET_KEY":   newKeyB64(t),
		"STAGELY_LISTEN":       "127.0.0.1:0",
	}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs = &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, nil, envOf(full), io.Discard, pw)
		pw.Close()
		done <- err
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			_, _ = logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				listening <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		cancel()
		waittest.Returned(t, done, 30*time.Second, "the server's run")
	})
	select {
	case addr = <-listening:
		return addr, logs
	case err := <-done:
		t.Fatalf("server stopped before listening: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not listen within 60s\n%s", logs)
	}
	return "", nil
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// appEnv configures a GitHub App through the environment, so webhooks are checked against secret.
func appEnv(t *testing.T, secret string) map[string]string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return map[string]string{
		"STAGELY_GITHUB_APP_ID": "1", "STAGELY_GITHUB_APP_PRIVATE_KEY": string(pemKey), "STAGELY_GITHUB_WEBHOOK_SECRET": secret,
	}
}

// heapInUse is the live heap after a collection, in bytes.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// slowConn is one attacker connection: it sends its opening, then a byte every
// trickleEvery until the server closes the connection. ended is closed once the server has
// closed it (or reset it); answer is the status line it got, if any.
type slowConn struct {
	conn   net.Conn
	ended  chan struct{}
	answer atomic.Value // string
}

const trickleEvery = 250 * time.Millisecond

func openSlow(t *testing.T, addr string, opening []byte, trickle bool) *slowConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &slowConn{conn: conn, ended: make(chan struct{})}
	c.answer.Store("")
	go func() {
		defer close(c.ended)
		head, _ := bufio.NewReader(conn).ReadString('\n')
		c.answer.Store(strings.TrimSpace(head))
		_, _ = io.Copy(io.Discard, conn)
	}()
	go func() {
		if _, err := conn.Write(opening); err != nil || !trickle {
			return
		}
		t := time.NewTicker(trickleEvery)
		defer t.Stop()
		for {
			select {
			case <-c.ended:
				return
			case <-t.C:
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	return c
}

// TestServe_SlowWebhookBodiesAndIdleConnectionsAreCutAndHoldNoMemory is the slow-body attack:
// 200 connections at once, 150 of them POSTing a 25 MiB body under a well-formed but wrong
// signature, sending 1 MiB at once and then a byte every 250 ms; 25 trickling a small body a
// byte at a time; 25 sending one quick request and then holding the connection idle. Before
// the fix every body was read as it came, with no deadline, and nothing was ever closed: the
// live heap grew by about 160 MiB and stayed there. Now the server holds at most its read budget
// of bodies, refuses the excess with 503, and closes every connection by the (here small)
// read and idle deadlines.
func TestServe_SlowWebhookBodiesAndIdleConnectionsAreCutAndHoldNoMemory(t *testing.T) {
	// Not parallel: the heap is measured in this process.
	env := appEnv(t, "webhook-secret")
	env["STAGELY_WEBHOOK_READ_TIMEOUT"] = "2s"
	env["STAGELY_HTTP_IDLE_TIMEOUT"] = "2s"
	addr, logs := startServer(t, env)

	const maxGrowth = 50 << 20
	base := heapInUse()
	mib := make([]byte, 1<<20)
	for i := range mib {
		mib[i] = '{'
	}
	var conns []*slowConn
	for i := range 150 {
		head := fmt.Sprintf("POST /webhooks/github HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"+
			"X-GitHub-Delivery: 77777777-0000-4000-8000-%012d\r\nX-Hub-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n",
			addr, i, strings.Repeat("0", 64), 25<<20)
		conns = append(conns, openSlow(t, addr, append([]byte(head), mib...), true))
	}
	for i := range 25 {
		head := fmt.Sprintf("POST /webhooks/github HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"+
			"X-GitHub-Delivery: 88888888-0000-4000-8000-%012d\r\nX-Hub-Signature-256: sha256=%s\r\nContent-Length: 1000\r\n\r\n{",
			addr, i, strings.Repeat("0", 64))
		conns = append(conns, openSlow(t, addr, []byte(head), true))
	}
	for range 25 {
		conns = append(conns, openSlow(t, addr, []byte("GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"), false))
	}

	// Sample the live heap until the server has closed every connection, or for 90 s.
	opened := time.Now()
	deadline := opened.Add(90 * time.Second)
	var peak uint64
	open := len(conns)
	for open > 0 && time.Now().Before(deadline) {
		if h := heapInUse(); h > base && h-base > peak {
			peak = h - base
		}
		open = 0
		for _, c := range conns {
			select {
			case <-c.ended:
			default:
				open++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var stillOpen []string
	for i, c := range conns {
		select {
		case <-c.ended:
		default:
			stillOpen = append(stillOpen, fmt.Sprintf("%d answered %q", i, c.answer.Load()))
		}
		c.conn.Close()
	}
	t.Logf("live heap growth under 200 slow connections: peak %.1f MiB (bound %d MiB); still open: %d, %s after they were opened",
		float64(peak)/(1<<20), maxGrowth>>20, open, time.Since(opened).Round(100*time.Millisecond))
	if peak >= maxGrowth {
		t.Errorf("the live heap grew by %.1f MiB, want under %d MiB", float64(peak)/(1<<20), maxGrowth>>20)
	}
	if open > 0 {
		t.Errorf("%d of %d connections were still open 90s after they stalled; the read and idle deadlines are 2s", open, len(conns))
		t.Logf("still open (0-149 large bodies, 150-174 small, 175-199 idle): %v", stillOpen)
	}
	answers := map[string]int{}
	for _, c := range conns[:175] {
		answers[c.answer.Load().(string)]++
	}
	t.Logf("webhook answers: %v", answers)
	for a := range answers {
		if a != "" && !strings.HasPrefix(a, "HTTP/1.1 503") && !strings.HasPrefix(a, "HTTP/1.1 408") {
			t.Errorf("a slow webhook was answered %q, want 503 or 408 (or a closed connection)", a)
		}
	}
	if t.Failed() {
		t.Logf("server log (last 4 KiB):\n%s", tail(logs.String(), 4<<10))
	}
}

// TestServe_PrintsTheSetupLinkOnlyWhileThereIsNoApp: without an App the log holds one line with
// the /setup link and its token, and that link (only) opens the registration form; with an App
// there is no such line.
func TestServe_PrintsTheSetupLinkOnlyWhileThereIsNoApp(t *testing.T) {
	t.Parallel()
	addr, logs := startServer(t, nil)
	var link string
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct {
			Msg      string
			SetupURL string `json:"setup_url"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.SetupURL != "" {
			if link != "" {
				t.Fatalf("the setup link was printed twice:\n%s", logs)
			}
			link = l.SetupURL
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Path != "/setup" || len(u.Query().Get("token")) < 22 {
		t.Fatalf("no setup link with a token of at least 128 bits in the log (got %q):\n%s", link, logs)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	for _, tt := range []struct {
		path string
		want int
		says string
	}{
		{"/setup", http.StatusForbidden, "server printed in its log"},
		{"/setup?" + u.RawQuery, http.StatusOK, `name="manifest"`},
	} {
		resp, err := browser.Get("http://" + addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.says) {
			t.Fatalf("GET %s: %d, want %d with %q", tt.path, resp.StatusCode, tt.want, tt.says)
		}
	}

	_, logs = startServer(t, appEnv(t, "s"))
	if strings.Contains(logs.String(), "setup_url") {
		t.Fatalf("a server with an App printed a setup link:\n%s", logs)
	}
}

// TestServe_PrunesDecidedDeliveriesPastTheRetention: the server runs the pruner from its start.
func TestServe_PrunesDecidedDeliveriesPastTheRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewDatabase(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"old", "recent"} {
		if _, _, err := st.RecordDelivery(ctx, store.NewDelivery{DeliveryID: id, Event: "push", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := st.ClaimDeliveries(ctx, 2, time.Minute, time.Now())
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	ago := map[string]time.Duration{"old": 9 * 24 * time.Hour, "recent": 6 * 24 * time.Hour}
	for _, d := range claimed {
		if err := st.FinishDelivery(ctx, d.ID, store.DeliveryDone, "ignored: test", time.Now().Add(-ago[d.DeliveryID])); err != nil {
			t.Fatal(err)
		}
	}
	startServer(t, map[string]string{"STAGELY_DATABASE_URL": dsn, "STAGELY_DELIVERY_RETENTION": "8d"})
	waittest.Until(t, 60*time.Second, "the server to prune a delivery decided 9 days ago, with an 8-day retention", func() bool {
		_, err := st.DeliveryByDeliveryID(ctx, "old")
		return store.IsNotFound(err)
	})
	if _, err := st.DeliveryByDeliveryID(ctx, "recent"); err != nil {
		t.Fatalf("a delivery decided 6 days ago was pruned: %v", err)
	}
}
