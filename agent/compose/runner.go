// Package compose runs the `docker compose` subcommands the agent needs, and nothing else.
//
// The agent never runs a host shell: every invocation is an argv built here from a
// safelisted subcommand, started with exec.CommandContext. Output is streamed line by line
// to a callback so a deploy can forward it as it happens.
package compose

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Streams a line can come from; they match the protocol's stream names.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// maxLine bounds one reported line; longer output is split so a runaway line cannot exhaust memory.
const maxLine = 64 << 10

// LineFunc receives one line of a command's output. Calls are serialised; lines of one
// stream arrive in order.
type LineFunc func(stream, line string)

// safelist is every compose subcommand the runner will start.
var safelist = map[string]bool{
	"build": true, "pull": true, "up": true, "run": true, "ps": true, "logs": true,
	"down": true, "config": true, "version": true, "stop": true, "rm": true,
}

// Runner starts `docker compose` processes.
type Runner struct {
	docker    string
	env       []string
	killGrace time.Duration
	observe   func(sub string, args []string, took time.Duration, err error)

	// discover is set when the compose plugin may be looked up and run directly.
	discover   bool
	pluginOnce sync.Once
	plugin     string

	versionMu    sync.Mutex
	versionKnown bool
	version      string
}

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	// Docker is the docker CLI binary. When set, every command goes through it as
	// `docker compose`; when empty, the compose plugin is run directly (see ComposePlugin)
	// and "docker" (looked up in PATH) is the fallback.
	Docker string
	// ComposePlugin is the compose CLI plugin binary, run directly (standalone mode) to
	// save the docker CLI's own start, its plugin scan and its second process: about 30 ms
	// a command. When empty, it is looked up where the docker CLI looks for it.
	ComposePlugin string
	// Env is the environment of every compose process; the agent's own environment when nil.
	Env []string
	// KillGrace is how long a cancelled command may take to exit after SIGTERM before its
	// process group is killed; 5s when zero.
	KillGrace time.Duration
	// Observe, when set, is called after each command with how long it took, for metrics
	// and benchmarks. Commands of one deploy may run concurrently, and so may its calls.
	Observe func(sub string, args []string, took time.Duration, err error)
}

// NewRunner returns a Runner.
func NewRunner(opts RunnerOptions) *Runner {
	r := &Runner{docker: opts.Docker, env: opts.Env, killGrace: opts.KillGrace, observe: opts.Observe}
	switch {
	case opts.ComposePlugin != "":
		r.plugin = opts.ComposePlugin
	case opts.Docker == "":
		r.discover = true
	}
	if r.docker == "" {
		r.docker = "docker"
	}
	if r.killGrace <= 0 {
		r.killGrace = 5 * time.Second
	}
	return r
}

// command returns the binary to start and the arguments that select compose: the plugin
// itself, or the docker CLI with "compose".
func (r *Runner) command(ctx context.Context) (bin string, argv []string, env []string) {
	if r.discover {
		r.pluginOnce.Do(func() {
			// Looked up once, on the first command: the result outlives that command's context.
			r.plugin = findPlugin(context.WithoutCancel(ctx), r.env, systemPluginDirs())
		})
	}
	if r.plugin != "" {
		return r.plugin, nil, pluginEnv(r.env)
	}
	return r.docker, []string{"compose"}, r.env
}

// Project is the `-p` and `-f` part shared by every command of one deploy.
type Project struct {
	// Name is the compose project name (`-p`).
	Name string
	// Files are the compose files (`-f`), in merge order; the first one's directory is the project directory.
	Files []string
	// Dir is the working directory of the compose process.
	Dir string
}

// ExitError reports a compose command that ran and exited non-zero.
type ExitError struct {
	Args []string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("docker compose %s exited with code %d", strings.Join(e.Args, " "), e.Code)
}

// Run starts `docker compose --project-name=<name> --file=<file>... <sub> <args...>`
// (or the compose plugin directly with the same arguments), streams every line of
// its output to onLine (which may be nil) and waits for it. When ctx ends, the whole process
// group gets SIGTERM, then SIGKILL after the kill grace.
func (r *Runner) Run(ctx context.Context, p Project, sub string, args []string, onLine LineFunc) error {
	_, err := r.run(ctx, p, sub, args, onLine, false)
	return err
}

// Output is Run that also returns everything the command printed on stdout.
func (r *Runner) Output(ctx context.Context, p Project, sub string, args []string, onLine LineFunc) ([]byte, error) {
	return r.run(ctx, p, sub, args, onLine, true)
}

func (r *Runner) run(ctx context.Context, p Project, sub string, args []string, onLine LineFunc, keep bool) (_ []byte, err error) {
	if !safelist[sub] {
		return nil, fmt.Errorf("compose subcommand %q is not allowed", sub)
	}
	if r.observe != nil {
		start := time.Now()
		defer func() { r.observe(sub, args, time.Since(start), err) }()
	}
	bin, argv, env := r.command(ctx)
	cmd := exec.CommandContext(ctx, bin, append(argv, composeArgs(p, sub, args)...)...)
	cmd.Dir = p.Dir
	cmd.Env = env
	disarm := r.signalGroupOnCancel(cmd)
	defer disarm()

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("docker compose %s: %w", sub, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("docker compose %s: %w", sub, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker compose %s: %w", sub, err)
	}
	// Pipes must be drained before Wait closes them.
	out := drain(stdout, stderr, keep, withoutNoise(onLine))
	werr := cmd.Wait()
	disarm()

	if werr != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("docker compose %s: %w", sub, context.Cause(ctx))
		}
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return out, &ExitError{Args: append([]string{sub}, args...), Code: ee.ExitCode()}
		}
		return out, fmt.Errorf("docker compose %s: %w", sub, werr)
	}
	return out, nil
}

// composeArgs are the arguments after the compose binary (or `docker compose`): the
// project's global flags, then the subcommand and its arguments. The one-token forms keep
// every global flag's value attached to it: standalone compose rewrites its arguments up to
// the first one without a leading dash.
func composeArgs(p Project, sub string, args []string) []string {
	var argv []string
	if p.Name != "" {
		argv = append(argv, "--project-name="+p.Name)
	}
	for _, f := range p.Files {
		argv = append(argv, "--file="+f)
	}
	argv = append(argv, sub)
	return append(argv, args...)
}

// signalGroupOnCancel makes the end of cmd's context send SIGTERM to cmd's whole process
// group, then SIGKILL after the kill grace. The docker CLI starts the compose plugin as a
// child process, and compose may start helpers of its own: only a signal to the whole group
// reaches them all. disarm cancels a pending SIGKILL once cmd has exited; it may be called
// more than once.
func (r *Runner) signalGroupOnCancel(cmd *exec.Cmd) (disarm func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var (
		mu        sync.Mutex
		killTimer *time.Timer
	)
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		mu.Lock()
		killTimer = time.AfterFunc(r.killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		mu.Unlock()
		return syscall.Kill(-pgid, syscall.SIGTERM)
	}
	cmd.WaitDelay = r.killGrace + 2*time.Second
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if killTimer != nil {
			killTimer.Stop()
		}
	}
}

// noise are compose warnings that say nothing a user can act on. Compose v2.40 builds with
// Bake by default and, when the buildx plugin is missing, warns on every build and uses
// its own builder, which is what the agent wants; COMPOSE_BAKE=false would trade that
// warning for a deprecation one, and DOCKER_BUILDKIT=0 for a third.
var noise = []string{
	"Docker Compose is configured to build using Bake, but buildx isn't installed",
}

// withoutNoise is onLine without the lines noise names.
func withoutNoise(onLine LineFunc) LineFunc {
	if onLine == nil {
		return nil
	}
	return func(stream, line string) {
		for _, n := range noise {
			if stream == StreamStderr && strings.Contains(line, n) {
				return
			}
		}
		onLine(stream, line)
	}
}

// drain hands every line of stdout and stderr to onLine (which may be nil), one call at a
// time, until both end; with keep it also returns stdout's lines.
func drain(stdout, stderr io.Reader, keep bool, onLine LineFunc) []byte {
	var (
		mu  sync.Mutex
		out bytes.Buffer
		wg  sync.WaitGroup
	)
	emit := func(stream, line string) {
		mu.Lock()
		defer mu.Unlock()
		if keep && stream == StreamStdout {
			out.WriteString(line)
			out.WriteByte('\n')
		}
		if onLine != nil {
			onLine(stream, line)
		}
	}
	wg.Add(2)
	go func() { defer wg.Done(); readLines(stdout, StreamStdout, emit) }()
	go func() { defer wg.Done(); readLines(stderr, StreamStderr, emit) }()
	wg.Wait()
	return out.Bytes()
}

// readLines splits r into lines (without the newline) and hands each to emit; a line
// longer than maxLine is cut into pieces.
func readLines(r io.Reader, stream string, emit func(stream, line string)) {
	br := bufio.NewReaderSize(r, maxLine)
	var partial []byte
	for {
		chunk, err := br.ReadSlice('\n')
		partial = append(partial, chunk...)
		switch {
		case err == nil:
			emit(stream, strings.TrimRight(string(partial), "\r\n"))
			partial = partial[:0]
		case errors.Is(err, bufio.ErrBufferFull):
			emit(stream, string(partial))
			partial = partial[:0]
		default:
			if len(partial) > 0 {
				emit(stream, strings.TrimRight(string(partial), "\r\n"))
			}
			return
		}
	}
}
