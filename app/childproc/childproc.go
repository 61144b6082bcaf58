// Package childproc runs a Stagely binary as a child process and stops it the way an
// operator would: an interrupt first, a kill only when it does not end in time.
package childproc

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Process is a started command. A goroutine waits for it; the process ending is that
// goroutine's exit.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start starts cmd, configured by the caller, and returns once it runs.
func Start(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (nil for a zero exit status); it is meaningful once Done is
// closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Kill kills the process at once, as a crash would; Done is closed once it has ended.
func (p *Process) Kill() error { return p.cmd.Process.Kill() }

// Pid is the process id; a process that re-executes itself keeps it.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the process and waits up to grace for it to end, then kills it. It
// returns once the process has ended, and reports whether it had to be killed.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	select {
	case <-p.done:
		return false
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}
