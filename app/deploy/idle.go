package deploy

import "context"

// AgentIdle starts whatever waited for an agent that declined an update offer: while the
// offer was out the agent did not count as idle (hub.IdleSink).
func (o *Orchestrator) AgentIdle(ctx context.Context, agentID int64) {
	o.kickAgent(ctx, agentID)
}
