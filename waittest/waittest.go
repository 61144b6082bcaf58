// Package waittest waits in tests for what happens on other goroutines, with deadlines
// generous enough for a loaded CI machine: it polls a condition, or waits for a goroutine to
// return. It never sleeps a fixed time in place of synchronising.
package waittest

import (
	"testing"
	"time"
)

// pollEvery is how often Until asks again; short, as the deadline, not the poll, bounds a test.
const pollEvery = 10 * time.Millisecond

// Until polls ok until it reports true, and fails the test if that takes longer than
// within. what says what was awaited, for the failure message.
func Until(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	UntilSays(t, within, what, func() (bool, string) { return ok(), "" })
}

// UntilSays is Until for a condition that can say where it stands: ok reports whether it
// holds and what it saw, and a test that times out says what ok saw last.
func UntilSays(t testing.TB, within time.Duration, what string, ok func() (done bool, saw string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, saw := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			if saw != "" {
				t.Fatalf("waited %v for %s; last saw %s", within, what, saw)
			}
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(pollEvery)
	}
}

// Returned waits up to within for a goroutine to send its result on done, and fails the
// test if it does not, or if the result is an error. what names the goroutine's function.
func Returned(t testing.TB, done <-chan error, within time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s returned %v", what, err)
		}
	case <-time.After(within):
		t.Fatalf("%s did not return within %v", what, within)
	}
}
