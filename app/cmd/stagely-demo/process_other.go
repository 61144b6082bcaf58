//go:build !linux

package main

import "syscall"

// childAttr has no parent-death signal outside Linux; Ctrl-C still stops the children.
func childAttr() *syscall.SysProcAttr { return nil }
