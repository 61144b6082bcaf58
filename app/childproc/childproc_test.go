package childproc_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/childproc"
)

func TestStop_InterruptedProcessEndsWithoutAKill(t *testing.T) {
	t.Parallel()
	p, err := childproc.Start(exec.Command("sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	if killed := p.Stop(time.Minute); killed {
		t.Fatal("a process that ends on an interrupt was killed")
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the process ended")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "interrupt") {
		t.Fatalf("a process ended by an interrupt reports %v", err)
	}
}

func TestStop_ProcessIgnoringTheInterruptIsKilledAfterTheGrace(t *testing.T) {
	t.Parallel()
	// The shell says it is ready only once it ignores SIGINT, so the interrupt cannot
	// arrive before the trap.
	cmd := exec.Command("sh", "-c", "trap '' INT; echo ready; while :; do sleep 1; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := childproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("ready\n"))
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("read the readiness line: %q %v", buf, err)
	}
	if killed := p.Stop(100 * time.Millisecond); !killed {
		t.Fatal("a process ignoring the interrupt was not killed")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("a killed process reports %v", err)
	}
}

func TestKill_EndsTheProcessAtOnce(t *testing.T) {
	t.Parallel()
	p, err := childproc.Start(exec.Command("sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("a killed process reports %v", err)
	}
}

func TestStop_EndedProcessIsLeftAlone(t *testing.T) {
	t.Parallel()
	p, err := childproc.Start(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("true exited with %v", err)
	}
	if killed := p.Stop(time.Minute); killed {
		t.Fatal("Stop killed a process that had ended")
	}
}

func TestStart_MissingBinaryIsAnError(t *testing.T) {
	t.Parallel()
	_, err := childproc.Start(exec.Command("/nonexistent/stagely-server"))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/stagely-server") {
		t.Fatalf("starting a missing binary: %v", err)
	}
}
