package hub_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/store"
)

// oneHashStore serves every agent id with the same token hash: an attacker walking the
// sequential agent ids finds each of them, and each bad token costs the server one bcrypt.
type oneHashStore struct {
	benchStore
	hash string
}

func (s oneHashStore) AgentByID(_ context.Context, id int64) (store.Agent, error) {
	return store.Agent{ID: id, Status: store.AgentOffline, TokenHash: s.hash}, nil
}

// processCPU is the CPU time (user + system) this process has used so far.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// localAddrKey carries the loopback address a request is dialled from.
type localAddrKey struct{}

// fromAddress returns a client whose requests come from 127.0.0.x, x taken from the
// request's context (withSource), so one test plays many source addresses over loopback.
func fromAddress() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dd := *d
			if ip, ok := ctx.Value(localAddrKey{}).(net.IP); ok {
				dd.LocalAddr = &net.TCPAddr{IP: ip}
			}
			return dd.DialContext(ctx, network, addr)
		},
	}}
}

// withSource makes requests under ctx come from 127.0.0.(1+n%250).
func withSource(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, localAddrKey{}, net.IPv4(127, 0, 0, byte(1+n%250)))
}

// handshake sends a WebSocket upgrade request with token; it returns the status and the
// Retry-After header.
func handshake(ctx context.Context, client *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// badTokenRun is what one burst of bad tokens cost the server.
type badTokenRun struct {
	cpu, wall   time.Duration
	checks      int64 // token hashes compared (bcrypt runs)
	maxParallel int64 // most checks running at once
	statuses    map[int]int
}

// sendBadTokens sends n bad tokens, `workers` at a time, for agent ids 1..n, from
// `addrs` loopback addresses, to a fresh hub whose every agent has the real bcrypt hash.
func sendBadTokens(b *testing.B, hash string, n, workers, addrs int) badTokenRun {
	b.Helper()
	var inFlight, maxParallel, checks atomic.Int64
	h := hub.New(hub.Options{Store: oneHashStore{hash: hash}, Sink: &countingSink{}, VerifyToken: func(token, hash string) error {
		checks.Add(1)
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := maxParallel.Load()
			if now <= old || maxParallel.CompareAndSwap(old, now) {
				break
			}
		}
		return agenttoken.Verify(token, hash)
	}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	client := fromAddress()
	url := srv.URL + "/agent/ws"

	var mu sync.Mutex
	statuses := map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0, start := processCPU(b), time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				bad, err := agenttoken.MintCost(int64(i), 4)
				if err != nil {
					b.Error(err)
					return
				}
				status, _, err := handshake(withSource(context.Background(), i%addrs), client, url, bad.Token)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return badTokenRun{cpu: processCPU(b) - cpu0, wall: time.Since(start), checks: checks.Load(), maxParallel: maxParallel.Load(), statuses: statuses}
}

// BenchmarkHandshake_BadTokens measures the server's CPU time for 100 bad agent tokens
// (each a wrong secret for an existing agent, bcrypt cost 10), sent 10 at a time or one
// after the other, from one address or from 100. The figure is the process's CPU
// (getrusage) over the burst, so it includes the clients' share (plain HTTP requests over
// loopback, a few ms); "cores" is that CPU over the wall time.
func BenchmarkHandshake_BadTokens(b *testing.B) {
	m, err := agenttoken.Mint(1)
	if err != nil {
		b.Fatal(err)
	}
	for _, sc := range []struct{ workers, addrs int }{{10, 1}, {10, 100}, {1, 1}, {1, 100}} {
		b.Run(fmt.Sprintf("%d_at_a_time_from_%d_addresses", sc.workers, sc.addrs), func(b *testing.B) {
			var run badTokenRun
			for b.Loop() {
				run = sendBadTokens(b, m.Hash, 100, sc.workers, sc.addrs)
			}
			b.ReportMetric(float64(run.cpu.Milliseconds()), "cpu-ms/100-bad-tokens")
			b.ReportMetric(run.cpu.Seconds()/run.wall.Seconds(), "cores")
			b.ReportMetric(float64(run.checks), "bcrypt-runs")
			b.ReportMetric(float64(run.maxParallel), "max-parallel-bcrypt")
			b.Logf("statuses %v, wall %s", run.statuses, run.wall.Round(time.Millisecond))
		})
	}
}
