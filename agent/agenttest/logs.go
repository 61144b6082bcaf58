package agenttest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer captures what a logger writes, safe for concurrent writers and readers, and
// lets a test wait until a message has been written. The zero value is ready to use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed and replaced on every write, waking WaitFor.
	changed chan struct{}
}

// Write appends p and wakes every waiter.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.buf.Write(p)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return n, err
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// WaitFor blocks until s occurs n times in the log, failing the test after 10 seconds.
func (l *LogBuffer) WaitFor(tb testing.TB, s string, n int) {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got := strings.Count(l.buf.String(), s)
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("log never said %q %d times; log:\n%s", s, n, l.String())
		}
	}
}
