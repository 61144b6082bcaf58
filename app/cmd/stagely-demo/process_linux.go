package main

import "syscall"

// childAttr makes the kernel send SIGTERM to a child when the demo dies without cleaning up
// (kill -9), so a second run never finds the first run's server or agent still holding on.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
