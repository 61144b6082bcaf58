package hub_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/waittest"
)

// The idle-connection benchmark runs its agents in a child process (this test binary,
// re-executed), so the server's memory figures hold nothing of the clients.
const (
	envBenchClientsURL = "STAGELY_HUB_BENCH_CLIENTS_URL"
	envBenchConns      = "STAGELY_HUB_BENCH_CONNS"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envBenchClientsURL); url != "" {
		os.Exit(runBenchClients(url))
	}
	os.Exit(m.Run())
}

// benchToken is agent id's token in the benchmark; the secret is fixed, the id varies.
func benchToken(id int64) string {
	return fmt.Sprintf("%s%d_%s", agenttoken.Prefix, id, strings.Repeat("A", 43))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// benchStore serves agents 1..N from memory, so PostgreSQL is not what is measured.
// Token hashes are SHA-256 instead of bcrypt: 10,000 bcrypt runs would take minutes and
// are measured on their own by BenchmarkAuthenticate.
type benchStore struct{}

func (benchStore) AgentByID(_ context.Context, id int64) (store.Agent, error) {
	return store.Agent{ID: id, Status: store.AgentOffline, TokenHash: sha256Hex(benchToken(id))}, nil
}
func (benchStore) MarkAgentConnected(context.Context, int64, store.AgentHello, time.Time) error {
	return nil
}
func (benchStore) SetAgentStatus(context.Context, int64, string) error                  { return nil }
func (benchStore) TouchAgent(context.Context, int64, time.Time) error                   { return nil }
func (benchStore) AppendAgentLogs(context.Context, int64, int64, []store.LogLine) error { return nil }
func (benchStore) ConsumeAgentBootstrap(context.Context, int64, string, string, string, time.Time) (bool, error) {
	return false, nil
}
func (benchStore) RetryAgentBootstrap(context.Context, int64, string, string, string, time.Time) (bool, error) {
	return false, nil
}
func (benchStore) AddAudit(context.Context, store.AuditEntry) error { return nil }
func (benchStore) DeploymentByID(_ context.Context, id int64) (store.Deployment, error) {
	return store.Deployment{}, fmt.Errorf("deployment %d: %w", id, store.ErrNotFound)
}

func sha256Verify(token, hash string) error {
	if sha256Hex(token) != hash {
		return agenttoken.ErrMismatch
	}
	return nil
}

// raiseNoFile lifts the open-file soft limit to the hard limit and checks it covers need.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise open-file limit: %w", err)
		}
	}
	if lim.Cur < need {
		return fmt.Errorf("open-file limit %d is below the %d this run needs; lower %s", lim.Cur, need, envBenchConns)
	}
	return nil
}

func benchConns() (int, error) {
	v := os.Getenv(envBenchConns)
	if v == "" {
		return 10000, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number", envBenchConns, v)
	}
	return n, nil
}

// runBenchClients is the child: it connects N agents, says "ready", and holds them
// (answering pings) until its stdin closes.
func runBenchClients(url string) int {
	n, err := benchConns()
	if err == nil {
		err = raiseNoFile(uint64(n) + 256)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hello, err := protocol.Encode(protocol.TypeHello, helloV1())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				c, err := dialRetrying(ctx, url, benchToken(i))
				if err == nil {
					err = c.Write(ctx, websocket.MessageText, hello)
				}
				if err != nil {
					failed.Store(fmt.Errorf("agent %d: %w", i, err))
					return
				}
				c.CloseRead(ctx)
				conns[i-1] = c
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// dialRetrying dials like an agent: a 429 (every token-check slot busy) is retried after
// its Retry-After, as the agent's backoff would.
func dialRetrying(ctx context.Context, url, token string) (*websocket.Conn, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	for {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			return c, err
		}
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		select {
		case <-time.After(time.Duration(max(secs, 1)) * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// countingSink counts connected agents and ignores everything else.
type countingSink struct{ connected atomic.Int64 }

func (s *countingSink) AgentConnected(context.Context, int64, protocol.Hello) { s.connected.Add(1) }
func (s *countingSink) JobAccepted(context.Context, int64, string)            {}
func (s *countingSink) JobPhase(context.Context, int64, string, string)       {}
func (s *countingSink) JobPlan(context.Context, int64, string, protocol.Plan) {}
func (s *countingSink) JobsHeld(context.Context, int64, []protocol.HeldJob)   {}
func (s *countingSink) JobResult(context.Context, int64, protocol.JobResult) error {
	return nil
}

func serverMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// BenchmarkIdleConnections measures what one idle agent connection costs the server:
// HeapInuse+StackInuse after GC with N agents connected (HELLO done) minus the same
// before they dialled, divided by N. The agents live in a child process.
func BenchmarkIdleConnections(b *testing.B) {
	n, err := benchConns()
	if err != nil {
		b.Fatal(err)
	}
	if err := raiseNoFile(uint64(n) + 256); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		perConn, heapPer, stackPer, gPer := idleConnectionsOnce(b, n)
		b.ReportMetric(perConn, "B/conn")
		b.ReportMetric(heapPer, "heap-B/conn")
		b.ReportMetric(stackPer, "stack-B/conn")
		b.ReportMetric(gPer, "goroutines/conn")
		if perConn > 64<<10 {
			b.Errorf("an idle connection costs the server %.0f bytes, budget is 65536", perConn)
		}
	}
}

func idleConnectionsOnce(b *testing.B, n int) (perConn, heapPer, stackPer, goroutinesPer float64) {
	sink := &countingSink{}
	h := hub.New(hub.Options{Store: benchStore{}, Sink: sink, VerifyToken: sha256Verify})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()

	heap0, stack0 := serverMemory()
	g0 := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(),
		envBenchClientsURL+"=ws"+strings.TrimPrefix(srv.URL, "http"),
		envBenchConns+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("client process said %q", line)
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("client process exited before connecting every agent")
		}
		ready <- err
	}()
	waittest.Returned(b, ready, 5*time.Minute, "the client process's start")
	waittest.UntilSays(b, time.Minute, "every agent connected", func() (bool, string) {
		return sink.connected.Load() >= int64(n) && h.ConnectedCount() == n, fmt.Sprintf("%d of %d agents connected", h.ConnectedCount(), n)
	})

	heap1, stack1 := serverMemory()
	g1 := runtime.NumGoroutine()
	heapPer = float64(int64(heap1)-int64(heap0)) / float64(n)
	stackPer = float64(int64(stack1)-int64(stack0)) / float64(n)
	return heapPer + stackPer, heapPer, stackPer, float64(g1-g0) / float64(n)
}
