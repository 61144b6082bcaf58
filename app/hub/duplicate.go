package hub

import (
	"context"
	"database/sql"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
)

// auditEvery bounds the audit entries of one kind of refusal per agent: a refused agent
// redials (systemd restarts it), and one entry a minute tells the story without flooding
// the log.
const auditEvery = time.Minute

// auditKey is what audit entries are paced per.
type auditKey struct {
	action  string
	agentID int64
}

// paceAudit reports whether an entry of action about the agent may be written now, and
// counts it.
func (h *Hub) paceAudit(action string, agentID int64) bool {
	now := h.opts.Now()
	key := auditKey{action, agentID}
	if ok, _, _ := h.auditPace.allow(key, now); !ok {
		return false
	}
	h.auditPace.charge(key, now)
	return true
}

// admitted decides what happens when the agent already has a connection: a second agent
// using the same credential while the first answers a ping is refused with
// CloseReasonDuplicate, logged and audited; a first connection that does not answer in
// PongTimeout is dead (a cut network, a killed process), and the newcomer takes over.
// false means c was refused and stopped.
func (c *conn) admitted(hello protocol.Hello) bool {
	h := c.hub
	h.mu.Lock()
	var old *conn
	if st := h.agents[c.agentID]; st != nil {
		old = st.conn
	}
	h.mu.Unlock()
	if old == nil || !old.alive() {
		return true
	}
	c.log.Warn("agent refused: another agent is connected with this token",
		"hostname", hello.Hostname, "connected_hostname", old.hostname)
	// Audited before the close, so whoever sees the refusal finds the entry.
	if h.paceAudit(AuditDuplicateRefused, c.agentID) {
		c.auditDuplicate(hello, old)
	}
	c.stop(websocket.StatusPolicyViolation, protocol.CloseReasonDuplicate)
	return false
}

// auditDuplicate records the refused newcomer for the agent's owner.
func (c *conn) auditDuplicate(hello protocol.Hello, old *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	agent, err := c.hub.opts.Store.AgentByID(ctx, c.agentID)
	if err != nil {
		c.log.Error("look up agent to audit a refused duplicate", "err", err)
		return
	}
	c.hub.audit(ctx, agent, AuditDuplicateRefused, map[string]any{
		"source": c.source, "hostname": hello.Hostname, "connected_hostname": old.hostname,
	})
}

// alive pings the connection and reports whether it answered within PongTimeout, or was
// heard from meanwhile (its reader may be busy and read the pong late).
func (c *conn) alive() bool {
	if c.ctx.Err() != nil {
		return false
	}
	timeout := c.hub.opts.PongTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err == nil {
		return true
	}
	return c.ctx.Err() == nil && time.Since(time.Unix(0, c.lastHeard.Load())) < timeout/2
}

func nullInt64(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: true} }
