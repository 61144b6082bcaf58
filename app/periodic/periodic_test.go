package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/app/periodic"
	"github.com/stagely/stagely/waittest"
)

func TestRun_PassesAtOnceThenPerIntervalAndReturnsNilWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var passes atomic.Int32
	done := make(chan error, 1)
	// An hour apart: only the pass at start can happen while the test runs.
	go func() { done <- periodic.Run(ctx, time.Hour, func(context.Context) { passes.Add(1) }) }()
	waittest.Until(t, time.Minute, "the pass at start", func() bool { return passes.Load() == 1 })
	cancel()
	waittest.Returned(t, done, time.Minute, "Run")
	if n := passes.Load(); n != 1 {
		t.Errorf("%d passes, want 1: the pass at start and no tick within an hour", n)
	}

	// A millisecond apart: passes follow each other until the context ends.
	ctx, cancel = context.WithCancel(context.Background())
	var again atomic.Int32
	go func() { done <- periodic.Run(ctx, time.Millisecond, func(context.Context) { again.Add(1) }) }()
	waittest.Until(t, time.Minute, "three passes", func() bool { return again.Load() >= 3 })
	cancel()
	waittest.Returned(t, done, time.Minute, "Run")
}
