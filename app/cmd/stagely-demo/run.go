package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// errUsage is returned after the usage text was printed for a bad command line.
var errUsage = errors.New("usage")

const defaultAdminURL = "postgres://postgres:stagely@127.0.0.1:5432/postgres?sslmode=disable"

const usage = `stagely-demo — Stagely's push-to-deploy loop on this machine

Starts githubsim (an in-process GitHub) with the repository demo/hello, a fresh PostgreSQL
database, the server and an agent on the local Docker engine; pushes a commit and shows the
webhook, the DEPLOY, the agent's log, the check run and the running service; then changes one
service's secret, redeploys and shows that only that service was recreated. Ctrl-C stops
everything it started. 'make demo' installs what is missing, builds and runs this.

Usage:
  stagely-demo [flags]

Flags:
  --non-interactive     run the script, clean up and exit (0 when every step passed)
  --workdir DIR         logs, agent data and state of the last run (default /tmp/stagely-demo)
  --server-bin PATH     the stagely-server binary (default bin/stagely-server)
  --agent-bin PATH      the stagely-agent binary (default bin/stagely-agent)
  --port N              the server's port on 127.0.0.1 (default 8080; taken or 0: any free port)
  --database-url URL    a PostgreSQL superuser URL; the demo creates its own database there
                        (default $STAGELY_TEST_DATABASE_URL, else the cluster of scripts/ensure-postgres.sh)
  --help                print this help
`

// options are the demo's settings after the command line is read.
type options struct {
	nonInteractive bool
	workdir        string
	serverBin      string
	agentBin       string
	port           int
	adminURL       string
}

func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("stagely-demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.nonInteractive, "non-interactive", false, "")
	fs.StringVar(&o.workdir, "workdir", filepath.Join(os.TempDir(), "stagely-demo"), "")
	fs.StringVar(&o.serverBin, "server-bin", "bin/stagely-server", "")
	fs.StringVar(&o.agentBin, "agent-bin", "bin/stagely-agent", "")
	fs.IntVar(&o.port, "port", 8080, "")
	adminURL := getenv("STAGELY_TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = defaultAdminURL
	}
	fs.StringVar(&o.adminURL, "database-url", adminURL, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return o, flag.ErrHelp
		}
		fmt.Fprint(stderr, usage)
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return o, fmt.Errorf("--port %d: want 0 to 65535", o.port)
	}
	for _, p := range []*string{&o.workdir, &o.serverBin, &o.agentBin} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, fmt.Errorf("resolve %s: %w", *p, err)
		}
		*p = abs
	}
	for name, p := range map[string]string{"--server-bin": o.serverBin, "--agent-bin": o.agentBin} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return o, fmt.Errorf("%s %s: not an executable file (build it with `make build`)", name, p)
		}
	}
	return o, nil
}

// run is the whole program; main only supplies the process's context (cancelled by Ctrl-C),
// arguments, environment and output streams, so the test runs it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opt, err := parseFlags(args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	d := &demo{opt: opt, getenv: getenv, out: &reporter{w: stdout, start: time.Now()}}
	err = d.script(ctx)
	if err == nil && !opt.nonInteractive {
		d.out.note("Ctrl-C stops the agent, the server, githubsim and the sample's containers.")
		<-ctx.Done()
		fmt.Fprintln(stdout)
	}
	d.stop(context.WithoutCancel(ctx))
	switch {
	case err != nil && ctx.Err() != nil:
		return errors.New("interrupted; everything the demo started was stopped")
	case err != nil:
		return fmt.Errorf("%w\n(server log: %s, agent log: %s)", err, filepath.Join(opt.workdir, "server.log"), filepath.Join(opt.workdir, "agent.log"))
	}
	if opt.nonInteractive {
		d.out.step("done", "every step passed")
	}
	return nil
}

// reporter prints the demo's steps with the time since the demo started.
type reporter struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

// step prints "[ 1.23s] name: detail".
func (r *reporter) step(name, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "[%5.2fs] %s: %s\n", time.Since(r.start).Seconds(), name, fmt.Sprintf(format, args...))
}

// detail prints an indented line under the last step (the agent's log lines).
func (r *reporter) detail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "           | %s\n", fmt.Sprintf(format, args...))
}

// note prints a line without a timing.
func (r *reporter) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "\n"+format+"\n", args...)
}
