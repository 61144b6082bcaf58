package deployer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/protocol"
)

// pollInterval is how often verify asks compose for the containers' state.
const pollInterval = 500 * time.Millisecond

// logTailLines is how many log lines of a failing service the result carries.
const logTailLines = 50

// target is a service a deploy must see running (and healthy, when it has a health check).
type target struct {
	name   string
	health bool
	grace  time.Duration
}

// verifyError names the service that did not come up and why.
type verifyError struct {
	service string
	reason  string
	// tail is the service's last log lines, once collected.
	tail []string
}

func (e *verifyError) Error() string { return fmt.Sprintf("service %s %s", e.service, e.reason) }

// verify polls the project's containers (containers) until every target is running — and healthy where it has a
// health check — or one of them runs out of its grace period or exits. Compose's own
// `up --wait` has one timeout for the whole project; per-service grace periods need this loop.
func (j *jobRun) verify(ctx context.Context, p compose.Project, targets []target) ([]protocol.ServiceStatus, error) {
	start := time.Now()
	for {
		cs, err := j.containers(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		statuses, pending, failed := judge(cs, targets, time.Since(start))
		if failed != nil {
			return statuses, failed
		}
		if len(pending) == 0 {
			return statuses, nil
		}
		select {
		case <-ctx.Done():
			return statuses, fmt.Errorf("waiting for %s: %w", strings.Join(pending, ", "), context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
}

// judge compares the containers with the targets after elapsed time.
func judge(cs []compose.Container, targets []target, elapsed time.Duration) (statuses []protocol.ServiceStatus, pending []string, failed *verifyError) {
	byService := map[string][]compose.Container{}
	for _, c := range cs {
		// A hook's container (or one a killed agent's hook left running) is not the service.
		if c.OneOff {
			continue
		}
		byService[c.Service] = append(byService[c.Service], c)
	}
	for _, t := range targets {
		st := serviceStatus(t.name, byService[t.name])
		statuses = append(statuses, st)
		if failed != nil {
			continue
		}
		ok, reason, final := assess(t, byService[t.name])
		switch {
		case ok:
		case final:
			failed = &verifyError{service: t.name, reason: reason}
		case elapsed >= t.grace:
			failed = &verifyError{service: t.name, reason: fmt.Sprintf("%s within its %s grace period", reason, t.grace)}
		default:
			pending = append(pending, t.name)
		}
	}
	return statuses, pending, failed
}

// assess says whether a service's containers are up, and if not, why and whether waiting could help.
func assess(t target, cs []compose.Container) (ok bool, reason string, final bool) {
	if len(cs) == 0 {
		return false, "has no container", false
	}
	for _, c := range cs {
		switch c.State {
		case "running":
		case "exited", "dead":
			return false, fmt.Sprintf("exited with code %d", c.ExitCode), true
		default:
			return false, fmt.Sprintf("is %s, not running", c.State), false
		}
		if t.health && c.Health != "healthy" {
			h := c.Health
			if h == "" {
				h = "unknown"
			}
			return false, fmt.Sprintf("did not become healthy (health %s)", h), false
		}
	}
	return true, "", false
}

// serviceStatus folds a service's containers (one per replica) into one status: the first
// container that is not running, or else the first one.
func serviceStatus(name string, cs []compose.Container) protocol.ServiceStatus {
	st := protocol.ServiceStatus{Name: name, State: "missing"}
	if len(cs) == 0 {
		return st
	}
	sort.Slice(cs, func(i, k int) bool { return cs[i].Name < cs[k].Name })
	pick := cs[0]
	for _, c := range cs {
		if c.State != "running" || (c.Health != "" && c.Health != "healthy") {
			pick = c
			break
		}
	}
	st.State, st.Health, st.ContainerID = pick.State, pick.Health, pick.ID
	return st
}
