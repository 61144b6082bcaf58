// Package recordtest keeps what a test double saw, for tests to read while the code under
// test may still be adding to it from other goroutines.
package recordtest

import "sync"

// List is a list that is safe to append to and read concurrently. Its zero value is empty
// and ready to use; it must not be copied after first use.
type List[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add appends v.
func (l *List[T]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v)
}

// All returns a copy of the items added so far, oldest first.
func (l *List[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}
