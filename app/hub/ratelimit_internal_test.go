package hub

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stagely/stagely/waittest"
)

func TestLimiterSet_RefusesOnceTheFailuresSpentTheBurstAndRefills(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiterSet[string](Rate{Burst: 3, Every: 10 * time.Second}, 100)
	for i := range 3 {
		if ok, _, _ := l.allow("a", now); !ok {
			t.Fatalf("attempt %d of a burst of 3 refused", i+1)
		}
		l.charge("a", now)
	}
	ok, wait, first := l.allow("a", now)
	if ok || wait != 10*time.Second || !first {
		t.Fatalf("4th attempt: ok %v, retry after %s, first refusal %v; want refused, 10s, true", ok, wait, first)
	}
	if _, wait, first = l.allow("a", now.Add(4*time.Second)); wait != 6*time.Second || first {
		t.Fatalf("5th attempt 4s later: retry after %s, first refusal %v; want 6s, false (logged once)", wait, first)
	}
	if ok, _, _ := l.allow("b", now); !ok || l.len() != 1 {
		t.Fatalf("another key: allowed %v, %d buckets; want allowed, and no bucket before a failure", ok, l.len())
	}
	if ok, _, _ := l.allow("a", now.Add(10*time.Second)); !ok {
		t.Fatal("refused after a token was earned")
	}
	// Failures allowed at the same moment all pay: the bucket goes into debt, down to -Burst.
	for range 10 {
		l.charge("c", now)
	}
	if _, wait, _ := l.allow("c", now); wait != 40*time.Second {
		t.Fatalf("after 10 failures at once with a burst of 3: retry after %s, want 40s", wait)
	}
}

func TestLimiterSet_MemoryIsBoundedWhateverTheNumberOfKeys(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiterSet[int](Rate{Burst: 2, Every: time.Second}, 1000)
	// An attacker with a million addresses, each failing once, one per millisecond.
	for i := range 1_000_000 {
		l.charge(i, now.Add(time.Duration(i)*time.Millisecond))
		if l.len() > 1000 {
			t.Fatalf("%d buckets after %d keys, bound is 1000", l.len(), i+1)
		}
	}
	// A key that keeps failing is still limited while it stays among the active ones.
	at := now.Add(time.Hour)
	l.charge(-1, at)
	l.charge(-1, at)
	if ok, _, _ := l.allow(-1, at); ok {
		t.Fatal("a key past its burst was allowed")
	}
}

func TestClientAddr_TrustsXForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxy configured: header ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, nil, "203.0.113.9"},
		{"peer not a trusted proxy: header ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, proxies, "203.0.113.9"},
		{"trusted proxy: its entry is the client", "10.1.2.3:5000", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"client-written entries left of the proxy's are ignored", "10.1.2.3:5000", []string{"192.0.2.66, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"a chain of trusted proxies is walked", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, proxies, "198.51.100.1"},
		{"several header lines read as one list", "10.1.2.3:5000", []string{"192.0.2.66", "198.51.100.1"}, proxies, "198.51.100.1"},
		{"trusted proxy without the header", "10.1.2.3:5000", nil, proxies, "10.1.2.3"},
		{"malformed entry: the hop that appended it", "10.1.2.3:5000", []string{"198.51.100.1, not-an-ip"}, proxies, "10.1.2.3"},
		{"entry with a port", "10.1.2.3:5000", []string{"198.51.100.1:4711"}, proxies, "198.51.100.1"},
		{"bracketed IPv6 entry", "[fd00::1]:5000", []string{"[2001:db8::7]"}, proxies, "2001:db8::7"},
		{"IPv4 mapped in IPv6", "[::ffff:203.0.113.9]:5000", nil, proxies, "203.0.113.9"},
		{"every entry trusted: the leftmost", "10.1.2.3:5000", []string{"10.4.4.4, 10.5.5.5"}, proxies, "10.4.4.4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tc.trusted); got.String() != tc.want {
				t.Fatalf("client address %s, want %s", got, tc.want)
			}
		})
	}
}

func TestKeyOf_GroupsIPv6ByItsSlash64(t *testing.T) {
	t.Parallel()
	a := keyOf(netip.MustParseAddr("2001:db8:1:2::1"))
	b := keyOf(netip.MustParseAddr("2001:db8:1:2:ffff::9"))
	c := keyOf(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c || a.String() != "2001:db8:1:2::/64" {
		t.Fatalf("keys %s %s %s: want one key per /64", a, b, c)
	}
	if k := keyOf(netip.MustParseAddr("::ffff:192.0.2.1")); k.String() != "192.0.2.1" {
		t.Fatalf("mapped IPv4 keyed as %s", k)
	}
}

func TestVerifySlots_WaitIsBoundedInCountAndTime(t *testing.T) {
	t.Parallel()
	// In count: with the slot and the one place in the queue taken, a caller is refused at
	// once. The queued waiter is ended by its context, not a timer, so that a loaded machine
	// cannot let its wait run out before the test has seen it queued.
	s := newVerifySlots(1, 1, time.Hour)
	ctx := context.Background()
	if !s.acquire(ctx) {
		t.Fatal("the free slot was refused")
	}
	waiterCtx, stopWaiter := context.WithCancel(ctx)
	waited := make(chan bool)
	go func() { waited <- s.acquire(waiterCtx) }()
	waittest.Until(t, time.Minute, "the waiter to queue", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting == 1
	})
	if s.acquire(ctx) {
		t.Fatal("a third caller got a slot with the slot and the queue taken")
	}
	stopWaiter()
	if <-waited {
		t.Fatal("the waiter got a slot that was never released")
	}
	s.release()
	if !s.acquire(ctx) {
		t.Fatal("the released slot was refused")
	}

	// In time: a waiter gives up once the wait has passed, though its context goes on.
	short := newVerifySlots(1, 1, 50*time.Millisecond)
	if !short.acquire(ctx) {
		t.Fatal("the free slot was refused")
	}
	if short.acquire(ctx) {
		t.Fatal("a waiter got a slot that was never released")
	}
}
