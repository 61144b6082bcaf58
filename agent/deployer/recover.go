package deployer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/protocol"
)

// restartedPrefix starts the error of every job an agent restart interrupted.
const restartedPrefix = "The agent restarted during the deploy"

// Recover brings the project of a job the agent was running when it was killed to a known
// state and returns that job's result. phase is the last phase the job had reached.
//
// The job comes from the agent's journal, without its secrets: the agent never writes them
// to disk. So Recover changes no container. Before the swap nothing was changed: the
// working directory goes back to the previous release and the running version stays.
// Once the swap had begun, the killed agent's compose may still be at work (it runs in its
// own process group), so Recover waits, within the services' grace periods, for the version
// being deployed (or, during a rollback, the one being rolled back to) to run and be
// healthy, and says which state it found. The status is always failure: the deploy did not
// complete as a whole.
func (d *Deployer) Recover(ctx context.Context, job protocol.Deploy, phase string, ev Events) (res protocol.JobResult) {
	start := time.Now()
	m := newMasker(nil)
	j := &jobRun{d: d, job: job, ev: maskedEvents{mu: &sync.Mutex{}, ev: ev, m: m}, mask: m}
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("recovery panicked", "job_id", job.JobID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res = protocol.JobResult{Status: protocol.StatusFailure, Error: restartedPrefix + ", and bringing the project to a known state hit an internal error. Check the agent's log and redeploy."}
		}
		res.JobID = job.JobID
		res.DurationMS = time.Since(start).Milliseconds()
		if res.Services == nil {
			res.Services = []protocol.ServiceStatus{}
		}
		d.log.Info("recovery finished", "job_id", job.JobID, "project", job.Project.ComposeProject, "status", res.Status, "error", res.Error)
	}()
	if job.Preview != nil && job.Preview.Stop {
		// A teardown needs nothing the journal lacks: it is simply done again.
		return j.runPreview(ctx)
	}
	return j.recover(ctx, phase)
}

// swapBegun reports whether a job in phase may have changed containers.
func swapBegun(phase string) bool {
	switch phase {
	case protocol.PhaseDeploying, protocol.PhaseVerifying, protocol.PhasePostDeploy, protocol.PhaseRollingBack:
		return true
	}
	return false
}

func (j *jobRun) recover(ctx context.Context, phase string) protocol.JobResult {
	job := j.job
	if !projectNameRE.MatchString(job.Project.ComposeProject) || !shaRE.MatchString(job.SHA) {
		return protocol.JobResult{Status: protocol.StatusFailure, Error: restartedPrefix + "; its journal entry is not valid, so the project was left as it is. Check it and redeploy."}
	}
	j.dirs = projectDirs{root: filepath.Join(j.d.dataDir, "projects", job.Project.ComposeProject)}
	unlock, err := j.d.locks.lock(ctx, job.Project.ComposeProject)
	if err != nil {
		return protocol.JobResult{Status: protocol.StatusFailure, Error: restartedPrefix + "; the agent stopped before it could check the project."}
	}
	defer unlock()
	// The killed job's override holds secrets: it goes first.
	if err := os.RemoveAll(j.dirs.run()); err != nil {
		j.say("could not remove %s: %v", j.dirs.run(), err)
	}
	when := phase
	if when == "" {
		when = "starting"
	}
	prefix := fmt.Sprintf("%s (while %s)", restartedPrefix, strings.ReplaceAll(when, "_", " "))
	j.say("the agent restarted while deploying %s (phase %s): bringing %s to a known state", short(job.SHA), when, job.Project.Name)

	timeout := job.Config.Timeout.Std()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, max(timeout, minRollbackTimeout))
	defer cancel()
	if !swapBegun(phase) {
		return j.recoverBeforeSwap(ctx, prefix)
	}
	return j.recoverAfterSwap(ctx, phase, prefix)
}

// recoverBeforeSwap puts back the previous release in the working directory: the running
// containers were never touched.
func (j *jobRun) recoverBeforeSwap(ctx context.Context, prefix string) protocol.JobResult {
	job := j.job
	if b, err := os.ReadFile(j.dirs.srcSHA()); err == nil && strings.TrimSpace(string(b)) == job.SHA &&
		job.Previous != nil && j.dirs.hasRelease(job.Previous.SHA) {
		if err := j.sync(job.Previous.SHA); err != nil {
			j.say("could not restore the working directory to %s: %v", short(job.Previous.SHA), err)
		} else {
			j.say("working directory restored to %s", short(job.Previous.SHA))
		}
	}
	statuses := j.snapshot(ctx)
	running := "the running version is untouched"
	if job.Previous != nil {
		running = fmt.Sprintf("the running version (%s) is untouched", short(job.Previous.SHA))
	}
	j.say("nothing was swapped; %s", running)
	return protocol.JobResult{Status: protocol.StatusFailure, Services: statuses,
		Error: fmt.Sprintf("%s, before the new containers were started: nothing was swapped, %s. Push again or press Re-run to deploy %s.", prefix, running, short(job.SHA))}
}

// recoverAfterSwap waits for the version being swapped in to run and be healthy.
func (j *jobRun) recoverAfterSwap(ctx context.Context, phase, prefix string) protocol.JobResult {
	job := j.job
	sha, cfg := job.SHA, job.Config
	if phase == protocol.PhaseRollingBack && job.Previous != nil {
		sha, cfg = job.Previous.SHA, job.Previous.Config
	}
	file, err := composeFile(j.dirs.src(), cfg.ComposeFile)
	if err != nil {
		return j.unknownState(ctx, prefix, sha, err)
	}
	base := j.baseProject(file)
	// The base file is enough to know the services and their health checks: the override
	// only adds environment.
	resolved, err := j.d.compose.Config(ctx, base, j.lines)
	if err != nil {
		return j.unknownState(ctx, prefix, sha, fmt.Errorf("read the compose file %s: %w", cfg.ComposeFile, err))
	}
	pl, _, err := j.targets(resolved, cfg)
	if err != nil {
		return j.unknownState(ctx, prefix, sha, err)
	}
	j.say("waiting for %s to run and be healthy", short(sha))
	statuses, err := j.verify(ctx, compose.Project{Name: job.Project.ComposeProject}, pl.targets)
	if err != nil {
		statuses = j.withLogTail(ctx, base, statuses, err)
		return protocol.JobResult{Status: protocol.StatusFailure, Services: statuses,
			Error: fmt.Sprintf("%s and %s did not come up: %s. The agent keeps no secrets on disk, so it cannot roll back by itself: press Roll back on the check run, or push a fix.",
				prefix, short(sha), describeVerify(err))}
	}
	msg := fmt.Sprintf("%s: %s is running and healthy", prefix, short(sha))
	switch {
	case phase == protocol.PhaseRollingBack:
		msg += fmt.Sprintf(" again (the deploy of %s had failed and was being rolled back)", short(job.SHA))
	case phase == protocol.PhasePostDeploy || len(job.Config.Hooks.PostDeploy) > 0:
		msg += ", but its post_deploy hooks did not complete. Press Re-run to deploy it again"
	}
	j.say("%s is running and healthy", short(sha))
	return protocol.JobResult{Status: protocol.StatusFailure, Services: statuses, Error: msg + "."}
}

// unknownState reports a project whose state the agent could not establish.
func (j *jobRun) unknownState(ctx context.Context, prefix, sha string, err error) protocol.JobResult {
	j.say("cannot check %s: %v", short(sha), err)
	return protocol.JobResult{Status: protocol.StatusFailure, Services: j.snapshot(ctx),
		Error: fmt.Sprintf("%s, and the agent could not check %s: %v. Check the project's services and redeploy.", prefix, short(sha), err)}
}

// snapshot returns the project's services as they are, for the result.
func (j *jobRun) snapshot(ctx context.Context) []protocol.ServiceStatus {
	cs, err := j.d.compose.PS(ctx, compose.Project{Name: j.job.Project.ComposeProject})
	if err != nil {
		j.say("could not list the containers: %v", err)
		return nil
	}
	byService := map[string][]compose.Container{}
	var order []string
	for _, c := range cs {
		if c.OneOff {
			continue
		}
		if _, seen := byService[c.Service]; !seen {
			order = append(order, c.Service)
		}
		byService[c.Service] = append(byService[c.Service], c)
	}
	var out []protocol.ServiceStatus
	for _, name := range order {
		out = append(out, serviceStatus(name, byService[name]))
	}
	return out
}

// describeVerify is verify's error without the wrapping.
func describeVerify(err error) string {
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.Error()
	}
	return err.Error()
}
