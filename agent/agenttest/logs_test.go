package agenttest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/agenttest"
)

func TestLogBuffer_WaitForReturnsOnceWritersHaveSaidItOftenEnough(t *testing.T) {
	t.Parallel()
	var logs agenttest.LogBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			fmt.Fprintf(&logs, "line %d: job finished\n", i)
		}
	}()
	logs.WaitFor(t, "job finished", 50)
	<-done
	if n := strings.Count(logs.String(), "\n"); n != 50 {
		t.Fatalf("buffer holds %d lines, want 50", n)
	}
}
