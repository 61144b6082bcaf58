package hub

import (
	"context"
	"math"
	"sync"
	"time"
)

// Rate is a token bucket: Burst attempts at once, then one more every Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// bucket is one token bucket. The zero value is not usable; newBucket starts it full.
type bucket struct {
	tokens float64
	last   time.Time
	// logged is set once a refusal was logged, and cleared by the next allowed attempt, so
	// a flood logs one line per key and episode rather than one per request.
	logged bool
}

// refill adds the tokens earned since last.
func (b *bucket) refill(r Rate, now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(float64(r.Burst), b.tokens+float64(elapsed)/float64(r.Every))
		b.last = now
	}
}

// wait is how long until the bucket holds a whole token; zero when it does.
func (b *bucket) wait(r Rate, now time.Time) time.Duration {
	b.refill(r, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(r.Every))
}

// spend takes a token. The bucket may go into debt, down to -Burst: attempts allowed at
// the same moment all pay, so concurrency cannot multiply an address's budget.
func (b *bucket) spend(r Rate, now time.Time) {
	b.refill(r, now)
	b.tokens = math.Max(-float64(r.Burst), b.tokens-1)
}

// limiterSet keeps one bucket per key, at most max of them, and only for keys that failed:
// a key without a bucket has its whole burst. A bucket that has refilled completely is the
// same as none, so it can be forgotten; when the set is full those
// are swept (at most once per Every, the sweep being O(max)), and if none is, an arbitrary
// bucket goes. Memory stays bounded whatever an attacker with many addresses does; the
// price is that past max active keys a key's history may be lost (a fresh full bucket),
// which the cap on concurrent token checks still bounds.
type limiterSet[K comparable] struct {
	rate Rate
	max  int

	mu        sync.Mutex
	m         map[K]*bucket
	lastSweep time.Time
}

func newLimiterSet[K comparable](r Rate, maxKeys int) *limiterSet[K] {
	return &limiterSet[K]{rate: r, max: maxKeys, m: map[K]*bucket{}}
}

// allow reports whether key has a token left, without spending it. Refused, it returns
// how long until the next token and whether this is the first refusal since the key was
// last allowed (worth a log line).
func (l *limiterSet[K]) allow(key K, now time.Time) (ok bool, retryAfter time.Duration, firstRefusal bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		return true, 0, false
	}
	if retryAfter = b.wait(l.rate, now); retryAfter == 0 {
		b.logged = false
		return true, 0, false
	}
	firstRefusal = !b.logged
	b.logged = true
	return false, retryAfter, firstRefusal
}

// charge spends one of key's tokens for an attempt that failed.
func (l *limiterSet[K]) charge(key K, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{tokens: float64(l.rate.Burst), last: now}
		l.m[key] = b
	}
	b.spend(l.rate, now)
}

// makeRoom frees a slot when the set is full; the caller holds mu. Idle buckets (refilled to
// the burst) are swept at most once per refill interval, so a flood of keys does not make
// every charge walk the whole set.
func (l *limiterSet[K]) makeRoom(now time.Time) {
	var idle func(*bucket) bool
	if len(l.m) >= l.max && now.Sub(l.lastSweep) >= l.rate.Every {
		l.lastSweep = now
		idle = func(b *bucket) bool {
			b.refill(l.rate, now)
			return b.tokens >= float64(l.rate.Burst)
		}
	}
	makeRoom(l.m, l.max, idle)
}

// len is the number of buckets kept.
func (l *limiterSet[K]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// verifySlots caps the token checks (bcrypt) running at once. A handshake that finds every
// slot taken waits at most wait, and only if fewer than queue others are waiting already;
// otherwise it is answered 429 at once. So however many bad tokens arrive, bcrypt never
// uses more than cap cores, and a flood neither piles up goroutines nor memory.
type verifySlots struct {
	slots   chan struct{}
	queue   int
	wait    time.Duration
	mu      sync.Mutex
	waiting int
}

func newVerifySlots(n, queue int, wait time.Duration) *verifySlots {
	return &verifySlots{slots: make(chan struct{}, n), queue: queue, wait: wait}
}

// acquire takes a slot; false means the server is too busy (or ctx ended).
func (s *verifySlots) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	s.mu.Lock()
	if s.waiting >= s.queue {
		s.mu.Unlock()
		return false
	}
	s.waiting++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}()
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (s *verifySlots) release() { <-s.slots }
