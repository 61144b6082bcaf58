package hub

import (
	"context"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// Self-update (docs/agents.md): an idle agent that says it can update itself, runs a build
// other than the one this server serves, and has automatic update on is sent one UPDATE
// per connection. From the offer until the agent reports a failure, the connection ends or
// Options.UpdateTimeout passes, the agent is not idle, so no DEPLOY races the restart.

// UpdateSource is the agent build the server serves; *agentdist.Dist is the real one.
type UpdateSource interface {
	// Version is the served build's version, "" when unknown (no offers then).
	Version() string
	// Checksum is the hex SHA-256 of the binary for arch, "" when there is none.
	Checksum(arch string) string
}

// IdleSink is implemented by a Sink that wants to hear when an agent becomes idle again
// without a result, after an update offer it declined; the orchestrator then hands it
// what waited.
type IdleSink interface {
	AgentIdle(ctx context.Context, agentID int64)
}

// unstampedVersion is what a development build of the agent reports; it is never replaced.
const unstampedVersion = "dev"

// updateState is one connection's part in self-update; guarded by Hub.mu.
type updateState struct {
	version  string // HELLO's agent_version
	platform string // HELLO's platform, like linux/amd64
	capable  bool   // HELLO lists protocol.FeatureSelfUpdate
	offered  bool   // an UPDATE went out on this connection
	pending  bool   // ... and the agent has not answered it yet
	timer    *time.Timer
}

// LatestAgentVersion is the version of the agent this server serves, "" when unknown.
func (h *Hub) LatestAgentVersion() string {
	if h.opts.Updates == nil {
		return ""
	}
	return h.opts.Updates.Version()
}

// SetAutoUpdate records the agent's switch for its live connection (the store holds it for
// later ones) and, switched on, offers an update if the agent is idle and behind.
func (h *Hub) SetAutoUpdate(agentID int64, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.agents[agentID]
	if st == nil {
		return
	}
	st.autoUpdate = on
	if st.conn != nil {
		st.conn.offerLocked()
	}
}

// updateOnConnect notes what HELLO said about updates, reads the agent's switch and offers
// an update if the agent is idle (nothing dispatched on connect) and behind.
func (c *conn) updateOnConnect(hello protocol.Hello) {
	h := c.hub
	if h.opts.Updates == nil || !hello.HasFeature(protocol.FeatureSelfUpdate) {
		return
	}
	ag, err := h.opts.Store.AgentByID(c.ctx, c.agentID)
	if err != nil {
		c.log.Warn("read the agent's auto-update switch; no update offered on this connection", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c.upd.version, c.upd.platform, c.upd.capable = hello.AgentVersion, hello.Platform, true
	c.st.autoUpdate = ag.AutoUpdate
	if !ag.AutoUpdate {
		c.log.Info("agent update not offered: automatic update is off for this agent",
			"version", hello.AgentVersion, "latest", h.LatestAgentVersion())
	}
	c.offerLocked()
}

// offerIfIdle offers an update once the agent's last job is done.
func (c *conn) offerIfIdle() {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	c.offerLocked()
}

// offerLocked sends UPDATE when every condition holds; the caller holds Hub.mu.
func (c *conn) offerLocked() {
	h := c.hub
	u := &c.upd
	if !u.capable || u.offered || h.opts.Updates == nil || c.st == nil || c.st.conn != c || !c.st.autoUpdate || len(c.st.jobs) > 0 {
		return
	}
	latest := h.opts.Updates.Version()
	if latest == "" || latest == u.version || u.version == "" || u.version == unstampedVersion {
		return
	}
	arch, ok := strings.CutPrefix(u.platform, "linux/")
	sum := ""
	if ok {
		sum = h.opts.Updates.Checksum(arch)
	}
	if sum == "" {
		c.log.Warn("agent update not offered: this server has no build for the agent's platform",
			"platform", u.platform, "version", u.version, "latest", latest)
		u.offered = true
		return
	}
	frame, err := protocol.Encode(protocol.TypeUpdate, protocol.Update{
		Version: latest, Platform: u.platform, SHA256: sum, Path: "/agent/download/" + u.platform,
	})
	if err == nil {
		err = c.trySend(outFrame{typ: protocol.TypeUpdate, b: frame})
	}
	if err != nil {
		c.log.Warn("agent update not offered", "err", err)
		return
	}
	u.offered, u.pending = true, true
	// Through the agent's worker, like every Sink call: one at a time, and waited for by Close.
	u.timer = time.AfterFunc(h.opts.UpdateTimeout, func() {
		c.st.work.control(func() { c.updateOver("no answer within " + h.opts.UpdateTimeout.String()) })
	})
	c.log.Info("agent update offered", "from", u.version, "to", latest, "platform", u.platform)
}

// updateFailed handles UPDATE_FAILED: the agent keeps its build and is idle again.
func (c *conn) updateFailed(f protocol.UpdateFailed) {
	c.updateOver(f.Error)
}

// updateOver ends an outstanding offer that did not end the connection.
func (c *conn) updateOver(reason string) {
	h := c.hub
	h.mu.Lock()
	was := c.upd.pending
	c.upd.pending = false
	if c.upd.timer != nil {
		c.upd.timer.Stop()
	}
	from, to := c.upd.version, h.LatestAgentVersion()
	h.mu.Unlock()
	if !was || c.ctx.Err() != nil {
		return
	}
	c.log.Warn("agent update failed; it keeps running its build", "version", from, "offered", to, "reason", reason)
	if s, ok := h.opts.Sink.(IdleSink); ok {
		s.AgentIdle(h.sinkCtx, c.agentID)
	}
}

// updating reports whether an offer is outstanding on the agent's connection; the caller
// holds Hub.mu.
func (st *agentState) updating() bool {
	return st.conn != nil && st.conn.upd.pending
}

// stopUpdate releases the offer's timer when the connection ends.
func (c *conn) stopUpdate() {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	if c.upd.timer != nil {
		c.upd.timer.Stop()
	}
}
