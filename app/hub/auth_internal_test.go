package hub

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/store"
)

// agentStore is a Store of one agent whose writes do nothing; the auth path only reads.
type agentStore struct {
	AgentByIDFn func(ctx context.Context, id int64) (store.Agent, error)
}

func (s agentStore) AgentByID(ctx context.Context, id int64) (store.Agent, error) {
	return s.AgentByIDFn(ctx, id)
}
func (agentStore) MarkAgentConnected(context.Context, int64, store.AgentHello, time.Time) error {
	return nil
}
func (agentStore) SetAgentStatus(context.Context, int64, string) error                  { return nil }
func (agentStore) TouchAgent(context.Context, int64, time.Time) error                   { return nil }
func (agentStore) AppendAgentLogs(context.Context, int64, int64, []store.LogLine) error { return nil }
func (agentStore) DeploymentByID(_ context.Context, id int64) (store.Deployment, error) {
	return store.Deployment{}, &store.NotFoundError{What: "deployment", Key: fmt.Sprint(id)}
}
func (agentStore) ConsumeAgentBootstrap(context.Context, int64, string, string, string, time.Time) (bool, error) {
	return false, nil
}
func (agentStore) RetryAgentBootstrap(context.Context, int64, string, string, string, time.Time) (bool, error) {
	return false, nil
}
func (agentStore) AddAudit(context.Context, store.AuditEntry) error { return nil }
func storeOf(a store.Agent) agentStore {
	return agentStore{AgentByIDFn: func(_ context.Context, id int64) (store.Agent, error) {
		if id != a.ID {
			return store.Agent{}, &store.NotFoundError{What: "agent", Key: fmt.Sprint(id)}
		}
		return a, nil
	}}
}

func TestTokenCache_BoundedAndExpiring(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newTokenCache(3, time.Minute)
	key := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "token-%d", i)) }
	for i := range 10 {
		c.put(key(i), int64(i), "$2a$hash", now)
		if c.len() > 3 {
			t.Fatalf("cache holds %d entries, bound is 3", c.len())
		}
	}
	if !c.valid(key(9), 9, "$2a$hash", now) {
		t.Fatal("the newest entry was evicted")
	}
	cases := []struct {
		name  string
		id    int64
		hash  string
		at    time.Time
		valid bool
	}{
		{"fresh entry, same hash", 9, "$2a$hash", now.Add(59 * time.Second), true},
		{"rotated hash", 9, "$2a$other", now, false},
		{"other agent id", 8, "$2a$hash", now, false},
		{"expired", 9, "$2a$hash", now.Add(time.Minute), false},
	}
	for _, tc := range cases {
		c.put(key(9), 9, "$2a$hash", now)
		if got := c.valid(key(9), tc.id, tc.hash, tc.at); got != tc.valid {
			t.Errorf("%s: valid = %v, want %v", tc.name, got, tc.valid)
		}
	}
}

func TestAuthenticate_StoreFailureIs503NotA401(t *testing.T) {
	t.Parallel()
	h := New(Options{Store: agentStore{AgentByIDFn: func(context.Context, int64) (store.Agent, error) {
		return store.Agent{}, errors.New("connection refused")
	}}})
	m, err := agenttoken.MintCost(3, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.authenticate(context.Background(), "Bearer "+m.Token, sourceKey{})
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusServiceUnavailable {
		t.Fatalf("authenticate with the database down = %v, want 503", err)
	}
}

// BenchmarkAuthenticate compares a handshake's token check with and without the cache:
// a reconnect storm of N agents costs N bcrypt runs without it.
func BenchmarkAuthenticate(b *testing.B) {
	m, err := agenttoken.Mint(7)
	if err != nil {
		b.Fatal(err)
	}
	h := New(Options{Store: storeOf(store.Agent{ID: 7, TokenHash: m.Hash})})
	header := "Bearer " + m.Token
	ctx := context.Background()
	check := func() {
		if _, err := h.authenticate(ctx, header, sourceKey{}); err != nil {
			b.Fatal(err)
		}
	}
	per := func(n int, f func()) float64 {
		start := time.Now()
		for range n {
			f()
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	var bcryptNs, cachedNs float64
	for b.Loop() {
		bcryptNs = per(5, func() { h.cache.forgetAgent(7); check() })
		check()
		cachedNs = per(20000, check)
	}
	speedup := bcryptNs / cachedNs
	b.ReportMetric(bcryptNs, "ns/uncached")
	b.ReportMetric(cachedNs, "ns/cached")
	b.ReportMetric(speedup, "x-faster")
	if speedup < 100 {
		b.Errorf("cached token check is only %.0fx faster than bcrypt, want over 100x", speedup)
	}
}
