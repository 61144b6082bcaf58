package waittest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/waittest"
)

// failing is the testing.TB handed to the helper under test: it records a Fatalf and ends
// the goroutine as the real one does, without failing the test that checks it.
type failing struct {
	testing.TB
	failed  bool
	message string
}

func (f *failing) Helper() {}

func (f *failing) Fatalf(format string, args ...any) {
	f.failed = true
	f.message = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// outcome runs f on its own goroutine (Fatalf ends it) and reports whether f failed.
func outcome(f func(t testing.TB)) (failed bool) {
	failed, _ = outcomeSaying(f)
	return failed
}

// outcomeSaying is outcome with the failure's message.
func outcomeSaying(f func(t testing.TB)) (failed bool, message string) {
	ft := &failing{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ft)
	}()
	<-done
	return ft.failed, ft.message
}

func TestUntil_ReturnsOnceTheConditionHoldsAndFailsAfterTheDeadline(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	if outcome(func(t testing.TB) {
		waittest.Until(t, time.Minute, "the third call", func() bool { return calls.Add(1) == 3 })
	}) {
		t.Fatal("Until failed although the condition came true")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("condition asked %d times, want 3 (it stops asking once true)", n)
	}
	if !outcome(func(t testing.TB) { waittest.Until(t, 20*time.Millisecond, "never", func() bool { return false }) }) {
		t.Error("Until did not fail for a condition that never held")
	}
}

func TestUntilSays_ATimeoutSaysWhatTheConditionSawLast(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	failed, msg := outcomeSaying(func(t testing.TB) {
		waittest.UntilSays(t, 20*time.Millisecond, "two agents", func() (bool, string) {
			return false, fmt.Sprintf("%d agents after %d looks", 1, calls.Add(1))
		})
	})
	if !failed || !strings.Contains(msg, "two agents; last saw 1 agents after ") || !strings.HasSuffix(msg, fmt.Sprintf("after %d looks", calls.Load())) {
		t.Fatalf("failed %t with %q, want the last state it saw", failed, msg)
	}
	if failed, _ := outcomeSaying(func(t testing.TB) {
		waittest.UntilSays(t, time.Minute, "at once", func() (bool, string) { return true, "" })
	}); failed {
		t.Fatal("UntilSays failed although the condition held")
	}
}

func TestReturned_FailsOnAnErrorOrAGoroutineThatDoesNotReturn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		sent       []error // what the goroutine sends on done: nothing, or its one result
		wantFailed bool
	}{
		{"returned nil", []error{nil}, false},
		{"returned an error", []error{errors.New("boom")}, true},
		{"never returned", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			for _, err := range tt.sent {
				done <- err
			}
			if got := outcome(func(t testing.TB) { waittest.Returned(t, done, 20*time.Millisecond, "Run") }); got != tt.wantFailed {
				t.Errorf("failed = %t, want %t", got, tt.wantFailed)
			}
		})
	}
}
