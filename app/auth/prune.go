package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/stagely/stagely/app/periodic"
)

// pruneEvery is how often Run deletes ended sessions; pruneAfter keeps them this long after
// they end, which costs nothing and leaves a trail for a day.
const (
	pruneEvery = time.Hour
	pruneAfter = 24 * time.Hour
)

// PruneSessions deletes sessions that expired or were revoked more than a day ago.
func (a *Auth) PruneSessions(ctx context.Context) (int64, error) {
	n, err := a.st.DeleteExpiredSessions(ctx, a.now().Add(-pruneAfter))
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}

// Run prunes ended sessions at once and then hourly until ctx ends; it always returns nil, as
// a failed prune is retried on the next tick.
func (a *Auth) Run(ctx context.Context) error {
	return periodic.Run(ctx, pruneEvery, func(ctx context.Context) {
		if n, err := a.PruneSessions(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("prune sessions", "err", err)
		} else if n > 0 {
			a.log.Info("pruned ended sessions", "count", n)
		}
	})
}
