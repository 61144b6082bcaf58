package conn

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"

	"github.com/stagely/stagely/agent/protocol"
)

// Updater applies an UPDATE from the server; *selfupdate.Updater is the real one. Apply
// calls hold once the build is ready: true means the agent was idle and now takes no job,
// and Apply then installs it.
type Updater interface {
	Apply(ctx context.Context, u protocol.Update, hold func() bool) error
}

// ErrRestart is what Run returns after an update was installed: the caller re-executes
// the binary (selfupdate.Updater.Exec).
var ErrRestart = errors.New("agent restarting into its update")

// helloUpdate is what HELLO says about updates: the platform, and the feature when this
// agent applies them.
func (c *Client) helloUpdate(h *protocol.Hello) {
	h.Platform = runtime.GOOS + "/" + runtime.GOARCH
	if c.opts.Updater != nil {
		h.Features = append(h.Features, protocol.FeatureSelfUpdate)
	}
}

// accepted tells the embedder the server has accepted this build's connection (a new
// build is on trial until then).
func (c *Client) accepted() {
	if c.opts.OnAccepted != nil {
		c.opts.OnAccepted()
	}
}

// onUpdate starts applying an update in the background, one at a time; whatever stops it
// is reported to the server with UPDATE_FAILED, and the agent keeps its build.
func (c *Client) onUpdate(u protocol.Update) {
	fail := func(msg string) {
		c.log.Warn("update not applied", "version", u.Version, "reason", msg)
		c.out.frame("", protocol.TypeUpdateFailed, protocol.UpdateFailed{Version: u.Version, Error: msg})
	}
	if err := protocol.Validate(&u); err != nil {
		fail(err.Error())
		return
	}
	if c.opts.Updater == nil {
		fail("self-update is off on this agent")
		return
	}
	if !c.jobs.idle() {
		fail("a deploy is running or queued")
		return
	}
	if !c.updating.CompareAndSwap(false, true) {
		return // the same offer again, on a new connection: the first is under way
	}
	c.log.Info("update offered: downloading", "from", c.opts.AgentVersion, "to", u.Version, "path", u.Path)
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		var held atomic.Bool
		hold := func() bool {
			ok := c.jobs.holdIfIdle()
			held.Store(ok)
			return ok
		}
		err := c.opts.Updater.Apply(c.bgCtx, u, hold)
		if err != nil {
			// The install failed after the hold (keeping .prev, a rename ...): the agent
			// goes on with its build, so it must take deploys again.
			if held.Load() {
				c.jobs.release()
			}
			c.updating.Store(false)
			fail(err.Error())
			return
		}
		c.restartOnce.Do(func() { close(c.restart) })
	}()
}
