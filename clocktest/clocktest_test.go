package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/clocktest"
)

func TestClock_StandsStillUntilAdvanced(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := clocktest.At(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Minute) })
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Minute); !got.Equal(want) {
		t.Fatalf("after ten advances of a minute Now() = %v, want %v", got, want)
	}
}

func TestNew_ReadsTheRealTimeToTheSecond(t *testing.T) {
	t.Parallel()
	before := time.Now().Add(-time.Second)
	got := clocktest.New().Now()
	if got.Before(before) || got.After(time.Now()) || got.Nanosecond() != 0 {
		t.Fatalf("New().Now() = %v, want the real time cut to the second", got)
	}
}
