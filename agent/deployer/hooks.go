package deployer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/protocol"
)

// hookWrapper runs the hook command ($1) inside the service container, bounded by the
// job's remaining time ($2 seconds).
//
// The shell is PID 1 of the one-off container, and PID 1 ignores signals it has no handler
// for: without the trap, the SIGTERM compose forwards on cancel or timeout would leave the
// container running. The watchdog covers the moment before compose forwards signals at
// all: a container orphaned then still ends when the job would have.
const hookWrapper = `trap 'kill -TERM $pid 2>/dev/null; exit 143' TERM INT
sh -c "$1" & pid=$!
(sleep "$2"; kill -TERM $pid 2>/dev/null; sleep 5; kill -KILL $pid 2>/dev/null) &
wait $pid`

// hookTailLines is how many of a failed hook's last output lines its error carries.
const hookTailLines = 20

// hookError is a hook that ran and failed, in the user's terms: the command they wrote,
// never the agent's wrapper around it.
type hookError struct {
	kind, service, command string
	// code is the exit code; -1 when the hook did not run to an exit.
	code int
	// cause is why a hook without an exit code failed.
	cause error
	// tail is the hook's last output lines.
	tail []string
}

func (e *hookError) Error() string {
	if e.code >= 0 {
		return fmt.Sprintf("%s hook `%s` in %s exited with code %d", e.kind, e.command, e.service, e.code)
	}
	return fmt.Sprintf("%s hook `%s` in %s could not run: %v", e.kind, e.command, e.service, e.cause)
}

func (e *hookError) Unwrap() error { return e.cause }

// hooks runs each hook as `compose run --rm --no-deps <service> sh -c <wrapper>` on the
// new config. A failing hook without continue_on_error ends the run with a *hookError.
func (j *jobRun) hooks(ctx context.Context, p compose.Project, kind string, hooks []protocol.Hook) error {
	for _, h := range hooks {
		j.say("%s hook in %s: %s", kind, h.Service, h.Command)
		err := j.hook(ctx, p, kind, h)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return err
		}
		if h.ContinueOnError {
			j.say("%s; continuing as continue_on_error is set", err)
			continue
		}
		return err
	}
	return nil
}

// hook runs one hook and keeps its last output lines for the error.
func (j *jobRun) hook(ctx context.Context, p compose.Project, kind string, h protocol.Hook) error {
	limit := 3600
	if dl, ok := ctx.Deadline(); ok {
		limit = max(1, int(math.Ceil(time.Until(dl).Seconds())))
	}
	args := []string{"--rm", "--no-deps", "-T", h.Service, "sh", "-c", hookWrapper, "stagely-hook", h.Command, strconv.Itoa(limit)}
	tail := &lineTail{max: hookTailLines}
	err := j.d.compose.Run(ctx, p, "run", args, func(stream, line string) {
		tail.add(j.mask.mask(line))
		j.lines(stream, line)
	})
	if err == nil {
		return nil
	}
	he := &hookError{kind: kind, service: h.Service, command: h.Command, code: -1, cause: err, tail: tail.lines()}
	var ee *compose.ExitError
	if errors.As(err, &ee) {
		he.code, he.cause = ee.Code, nil
	}
	if ctx.Err() != nil {
		he.cause = context.Cause(ctx)
	}
	return he
}

// lineTail keeps the last max lines it is given.
type lineTail struct {
	mu  sync.Mutex
	max int
	buf []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == t.max {
		t.buf = t.buf[1:]
	}
	t.buf = append(t.buf, line)
}

func (t *lineTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.buf)
}

// startHookDependencies starts, with the new configuration, the services the pre_deploy
// hooks' services depend on (depends_on, transitively) that are not running — on a first
// deploy, the database a migration needs — and waits until they are running, or healthy
// when they have a health check, as `up --wait` does. Running ones are left alone: the swap
// replaces them, after the hooks. Ignored services are never started.
func (j *jobRun) startHookDependencies(ctx context.Context, pl plan, hooks []protocol.Hook) error {
	deps := hookDependencies(pl.resolved, hooks, names(pl.targets))
	if len(deps) == 0 {
		return nil
	}
	cs, err := j.containers(ctx, pl.p)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	running := map[string]bool{}
	for _, c := range cs {
		if !c.OneOff && c.State == "running" {
			running[c.Service] = true
		}
	}
	var start []string
	var wait time.Duration
	for _, t := range pl.targets {
		if slices.Contains(deps, t.name) && !running[t.name] {
			start = append(start, t.name)
			wait = max(wait, t.grace)
		}
	}
	if len(start) == 0 {
		return nil
	}
	j.say("starting %s for the pre_deploy hooks", strings.Join(start, ", "))
	args := append([]string{"-d", "--no-deps", "--wait", "--wait-timeout", strconv.Itoa(int(math.Ceil(wait.Seconds())))}, start...)
	if err := j.d.compose.Run(ctx, pl.p, "up", args, j.lines); err != nil {
		return fmt.Errorf("start %s, which the pre_deploy hooks' services depend on: %w", strings.Join(start, ", "), err)
	}
	return nil
}

// hookDependencies are the deployed services the hooks' services depend on, directly or
// not, in the order of deployed.
func hookDependencies(resolved *compose.Config, hooks []protocol.Hook, deployed []string) []string {
	need := map[string]bool{}
	var visit func(svc string)
	visit = func(svc string) {
		for dep := range resolved.Services[svc].DependsOn {
			if !need[dep] {
				need[dep] = true
				visit(dep)
			}
		}
	}
	for _, h := range hooks {
		visit(h.Service)
	}
	var out []string
	for _, s := range deployed {
		if need[s] {
			out = append(out, s)
		}
	}
	return out
}
