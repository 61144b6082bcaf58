package hub_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/store"
)

// attempt is one handshake's answer.
type attempt struct {
	status     int
	retryAfter string
}

// tryToken sends one handshake with token from loopback address 127.0.0.(1+source).
func (e *env) tryToken(source int, token string) attempt {
	e.t.Helper()
	status, retry, err := handshake(withSource(e.ctx, source), fromAddress(), e.srv.URL+"/agent/ws", token)
	if err != nil {
		e.t.Fatalf("handshake: %v", err)
	}
	return attempt{status, retry}
}

// checkRateLimited fails unless a is a 429 with a Retry-After of whole seconds.
func checkRateLimited(t *testing.T, a attempt) {
	t.Helper()
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", a.status)
	}
	if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
		t.Fatalf("429 with Retry-After %q, want a number of seconds", a.retryAfter)
	}
}

func TestHandshake_BadTokensFromOneAddressCostAtMostABurstOfChecks(t *testing.T) {
	t.Parallel()
	// The default burst, refilled too slowly to matter however long a loaded machine takes.
	e := newEnv(t, nil, func(o *hub.Options) { o.SourceRate = hub.Rate{Burst: 20, Every: time.Hour} })
	// An attacker walks the sequential agent ids from one address: every id exists, so
	// each bad token would cost a bcrypt.
	var bad []string
	for i := range 100 {
		agent, _ := e.newAgent(fmt.Sprintf("box-%d", i))
		bad = append(bad, apptest.MintToken(t, agent.ID).Token)
	}
	var statuses []int
	for i, tok := range bad {
		a := e.tryToken(0, tok)
		statuses = append(statuses, a.status)
		if a.status == http.StatusTooManyRequests {
			checkRateLimited(t, a)
		} else if a.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401 or 429", i, a.status)
		}
	}
	if n := e.verif.Load(); n > 20 {
		t.Fatalf("100 bad tokens from one address ran %d token checks, want at most the address's burst of 20 (statuses %v)", n, statuses)
	}
	if last := statuses[len(statuses)-1]; last != http.StatusTooManyRequests {
		t.Fatalf("the 100th bad token from one address answered %d, want 429", last)
	}
	for _, s := range []string{"stg_", "Bearer"} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatalf("log output contains %q:\n%s", s, e.logs.String())
		}
	}
}

func TestHandshake_BadTokensForOneAgentFromManyAddressesAreLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) { o.AgentRate = hub.Rate{Burst: 10, Every: time.Hour} })
	agent, _ := e.newAgent("box")
	limited := 0
	for i := range 40 {
		a := e.tryToken(i, apptest.MintToken(t, agent.ID).Token)
		if a.status == http.StatusTooManyRequests {
			checkRateLimited(t, a)
			limited++
		}
	}
	if n := e.verif.Load(); n > 10 {
		t.Fatalf("40 bad tokens for one agent from 40 addresses ran %d token checks, want at most the agent's burst of 10", n)
	}
	if limited != 40-int(e.verif.Load()) {
		t.Fatalf("%d of 40 attempts were answered 429 and %d checked; every attempt must be one or the other", limited, e.verif.Load())
	}
}

func TestHandshake_ConcurrentTokenChecksAreCapped(t *testing.T) {
	t.Parallel()
	const attempts, slots, queue = 10, 2, 2
	var inFlight, most atomic.Int64
	gate := make(chan struct{})
	e := newEnv(t, nil, func(o *hub.Options) {
		o.VerifySlots, o.VerifyQueue, o.VerifyWait = slots, queue, time.Minute
		verify := o.VerifyToken
		o.VerifyToken = func(token, hash string) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for old := most.Load(); n > old && !most.CompareAndSwap(old, n); old = most.Load() {
			}
			<-gate
			return verify(token, hash)
		}
	})
	// Distinct agents and distinct addresses: no bucket stops these, only the slots.
	tokens := make([]string, attempts)
	for i := range tokens {
		agent, _ := e.newAgent(fmt.Sprintf("box-%d", i))
		tokens[i] = apptest.MintToken(t, agent.ID).Token
	}
	answers := make(chan attempt, attempts)
	for i, tok := range tokens {
		go func() {
			status, retry, err := handshake(withSource(e.ctx, i), fromAddress(), e.srv.URL+"/agent/ws", tok)
			if err != nil {
				t.Error(err)
			}
			answers <- attempt{status, retry}
		}()
	}
	// Every attempt that found no slot and no room to wait is answered at once.
	var got []attempt
	for range attempts - slots - queue {
		got = append(got, <-answers)
	}
	eventually(t, "the slots taken", func() bool { return inFlight.Load() == slots })
	close(gate)
	for range slots + queue {
		got = append(got, <-answers)
	}
	limited := 0
	for _, a := range got {
		switch a.status {
		case http.StatusTooManyRequests:
			checkRateLimited(t, a)
			limited++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("status %d, want 401 or 429", a.status)
		}
	}
	if m := most.Load(); m > slots {
		t.Fatalf("%d token checks ran at once, want at most %d", m, slots)
	}
	if limited != attempts-slots-queue || e.verif.Load() != slots+queue {
		t.Fatalf("%d answered 429 and %d checked, want %d and %d (the slots, then the queue)", limited, e.verif.Load(), attempts-slots-queue, slots+queue)
	}
}

func TestHandshake_CachedTokenConnectsFromARateLimitedAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	agent, token := e.newAgent("box")
	e.connectOnce(agent.ID, token)
	// Someone behind the same address (a NAT, the proxy) burns its budget of failures.
	other, _ := e.newAgent("other")
	for {
		if a := e.tryToken(0, apptest.MintToken(t, other.ID).Token); a.status == http.StatusTooManyRequests {
			break
		}
	}
	if a := e.tryToken(0, token); a.status != http.StatusSwitchingProtocols {
		t.Fatalf("a verified agent from the rate-limited address answered %d, want 101", a.status)
	}
}

func TestHandshake_ManyAgentsBehindOneAddressEachConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	// Three times the address's burst of first connections (nothing cached, as after a
	// server restart): successes give their attempt back, so none is refused.
	for i := range 60 {
		_, token := e.newAgent(fmt.Sprintf("box-%d", i))
		if a := e.tryToken(0, token); a.status != http.StatusSwitchingProtocols {
			t.Fatalf("agent %d of 60 behind one address answered %d, want 101", i+1, a.status)
		}
	}
}

func TestHandshake_TrustedProxyForwardsTheClientAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(o *hub.Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.SourceRate = hub.Rate{Burst: 2, Every: time.Hour}
	})
	var agents []store.Agent
	for i := range 6 {
		a, _ := e.newAgent(fmt.Sprintf("box-%d", i))
		agents = append(agents, a)
	}
	try := func(i int, xff string) int {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/agent/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apptest.MintToken(t, agents[i].ID).Token)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// Two clients behind the proxy each get their own burst of 2.
	got := []int{try(0, "203.0.113.7"), try(1, "203.0.113.7"), try(2, "203.0.113.7"),
		try(3, "198.51.100.1"), try(4, "198.51.100.1")}
	want := []int{401, 401, 429, 401, 401}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	// A client cannot pick its address by writing its own entry first: the proxy's is read.
	if s := try(5, "198.51.100.99, 203.0.113.7"); s != http.StatusTooManyRequests {
		t.Fatalf("a forged leftmost entry answered %d, want 429 for 203.0.113.7", s)
	}
}
