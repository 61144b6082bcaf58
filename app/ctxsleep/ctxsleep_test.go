package ctxsleep_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stagely/stagely/app/ctxsleep"
)

func TestSleep_WaitsOutTheDurationOrEndsWithTheContext(t *testing.T) {
	t.Parallel()
	if err := ctxsleep.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a finished wait returned %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour: only the ended context can end this wait while the test runs.
	if err := ctxsleep.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait whose context ended returned %v, want context.Canceled", err)
	}
}
