package logtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stagely/stagely/app/logtest"
)

func TestBuffer_KeepsEveryLineOfConcurrentWritersWhileRead(t *testing.T) {
	t.Parallel()
	var b logtest.Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
				_ = b.String() // a reader racing the writers
			}
		})
	}
	wg.Wait()
	got := b.String()
	if n := strings.Count(got, "\n"); n != 400 {
		t.Fatalf("buffer holds %d lines, want 400", n)
	}
	for w := range 4 {
		if !strings.Contains(got, fmt.Sprintf("writer %d line 99\n", w)) {
			t.Fatalf("buffer lacks writer %d's last line", w)
		}
	}
}

func TestBufferLogger_WritesDebugRecordsAsText(t *testing.T) {
	t.Parallel()
	var b logtest.Buffer
	b.Logger().Debug("agent connected", "agent_id", 7)
	if got := b.String(); !strings.Contains(got, `level=DEBUG msg="agent connected" agent_id=7`) {
		t.Fatalf("log = %q, want a debug line in text format", got)
	}
}
