package deployer

import (
	"context"
	"sync"
)

// projectLocks serialises jobs of one compose project: two deploys of the same project
// would fight over its working directory and containers.
type projectLocks struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
}

func newProjectLocks() *projectLocks { return &projectLocks{slots: map[string]chan struct{}{}} }

// lock waits for the project's slot or for ctx to end, and returns the release function.
func (l *projectLocks) lock(ctx context.Context, project string) (func(), error) {
	l.mu.Lock()
	slot, ok := l.slots[project]
	if !ok {
		slot = make(chan struct{}, 1)
		l.slots[project] = slot
	}
	l.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
