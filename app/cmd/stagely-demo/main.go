// Command stagely-demo runs Stagely's whole push-to-deploy loop on this machine: githubsim
// with a sample repository, PostgreSQL, the server and agent binaries and the Docker engine.
// `make demo` runs it; `make test` runs it with --non-interactive.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "stagely-demo:", err)
		}
		stop()
		os.Exit(1)
	}
}
