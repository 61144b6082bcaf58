// Package clocktest is the clock tests hand to code that reads the time through a
// func() time.Time: it stands still until the test moves it, so nothing expires while a
// slow machine runs an attempt, and the test decides when a token, a session or a back-off
// has run out.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a manual clock safe for concurrent use. Give its Now method where a clock is
// wanted (githubsim.Options.Now, auth.Options.Now, ...) and move it with Advance.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock reading the real time now, cut to the second (the precision of JWT
// claims), so libraries that read the real clock agree with it.
func New() *Clock { return At(time.Now().Truncate(time.Second)) }

// At returns a clock reading t.
func At(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
