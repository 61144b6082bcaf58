// Package periodic runs the server's background passes (sweeping deployments, pruning sessions
// and history, recovering missed webhooks): one pass at once, then one per interval, until the
// context ends.
package periodic

import (
	"context"
	"time"
)

// Run calls pass at once and then every interval until ctx ends, and returns nil then. A pass
// handles (logs) its own failure: the next tick is its retry. Passes never overlap.
func Run(ctx context.Context, interval time.Duration, pass func(ctx context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
