package deployer

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/protocol"
)

// Labels compose puts on the containers it creates.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelOneOff  = "com.docker.compose.oneoff"
	labelHash    = "com.docker.compose.config-hash"
	labelImage   = "com.docker.compose.image"
)

// planInputs is what the plan is computed from: the project's containers before the build
// step (which creates the containers of new services), and, after it, compose's hash of
// each deployed service and the id of each deployed service's image.
type planInputs struct {
	before []engine.Container
	hashes map[string]string
	images map[string]string
}

// containersBefore lists the project's containers before the build step; nil when the engine API
// is out of reach, and the job then goes without a plan.
func (j *jobRun) containersBefore(ctx context.Context) []engine.Container {
	if j.d.engine == nil || !j.planning(ctx) {
		return nil
	}
	cs, err := j.d.engine.Containers(ctx, labelProject, j.job.Project.ComposeProject)
	if err != nil {
		j.say("could not list the running containers (%v); deploying without a plan", err)
		return nil
	}
	if cs == nil {
		cs = []engine.Container{}
	}
	return cs
}

// planning reports whether this job computes a plan: it needs the engine API and a compose
// that reads `!reset` in the override (v2.24, January 2024; see prepare).
func (j *jobRun) planning(ctx context.Context) bool {
	return j.d.engine != nil && compose.AtLeast(j.d.compose.Version(ctx), 2, 24)
}

// makePlan computes the plan once the images are built and pulled, and reports it. ok is
// false when the job goes without one.
func (j *jobRun) makePlan(ctx context.Context, pl plan, before []engine.Container) (protocol.Plan, bool) {
	if before == nil || pl.hashes == nil {
		return protocol.Plan{}, false
	}
	in := planInputs{before: before, hashes: pl.hashes, images: map[string]string{}}
	for _, t := range pl.targets {
		ref := j.imageRef(t.name, pl.resolved.Services[t.name])
		id, err := j.d.engine.ImageID(ctx, ref)
		if err != nil {
			j.say("could not inspect the image of %s (%v); deploying without a plan", t.name, err)
			return protocol.Plan{}, false
		}
		in.images[t.name] = id
	}
	p := decide(pl.resolved, names(pl.targets), pl.ignoredNames, in)
	j.ev.Plan(p)
	j.say("plan: %s", p)
	return p, true
}

// decide says what `up` will do to each service, as compose decides it (v2.40,
// pkg/compose/convergence.go mustRecreate): a container whose config-hash label differs
// from the service's hash, or whose image label differs from the id of the service's image
// (a build that changed the image changes only that), is recreated; a service without
// containers is created; one with a stopped container is started; one with another number
// of containers than its replicas is scaled; an unchanged one that depends with
// `restart: true` on a recreated one is restarted. Containers of services the compose file no
// longer has are removed (--remove-orphans); one-off containers (hooks) are not services.
func decide(resolved *compose.Config, deployed, ignored []string, in planInputs) protocol.Plan {
	byService := map[string][]engine.Container{}
	for _, c := range in.before {
		if c.Labels[labelOneOff] == "True" {
			continue
		}
		byService[c.Labels[labelService]] = append(byService[c.Labels[labelService]], c)
	}
	var p protocol.Plan
	for _, name := range deployed {
		switch change := serviceChange(byService[name], in.hashes[name], in.images[name], resolved.Services[name].Replicas()); change {
		case protocol.ChangeCreate:
			p.Create = append(p.Create, name)
		case protocol.ChangeRecreate:
			p.Recreate = append(p.Recreate, name)
		case protocol.ChangeStart:
			p.Start = append(p.Start, name)
		case protocol.ChangeScale:
			p.Scale = append(p.Scale, name)
		default:
			p.Unchanged = append(p.Unchanged, name)
		}
	}
	p.Unchanged, p.Restart = restarted(resolved, p.Unchanged, p.Recreate)
	p.Ignored = slices.Clone(ignored)
	for svc := range byService {
		if _, ok := resolved.Services[svc]; !ok {
			p.Remove = append(p.Remove, svc)
		}
	}
	for _, l := range p.Lists() {
		sort.Strings(*l.Names)
	}
	return p
}

// restarted moves out of unchanged the services compose restarts because a dependency
// they name with `restart: true` is recreated (compose v2.40 stops them before the
// recreate and starts them after it; the restart does not reach their own dependents).
func restarted(resolved *compose.Config, unchanged, recreate []string) (still, restart []string) {
	for _, name := range unchanged {
		if slices.ContainsFunc(recreate, func(dep string) bool { return resolved.Services[name].DependsOn[dep].Restart }) {
			restart = append(restart, name)
		} else {
			still = append(still, name)
		}
	}
	return still, restart
}

// serviceChange is what `up` does to one service's containers cs.
func serviceChange(cs []engine.Container, hash, image string, replicas int) string {
	if len(cs) == 0 {
		if replicas == 0 {
			return protocol.ChangeUnchanged
		}
		return protocol.ChangeCreate
	}
	stopped := false
	for _, c := range cs {
		if c.Labels[labelHash] != hash || c.Labels[labelImage] != image {
			return protocol.ChangeRecreate
		}
		stopped = stopped || c.State != "running"
	}
	switch {
	case len(cs) != replicas:
		return protocol.ChangeScale
	case stopped:
		return protocol.ChangeStart
	}
	return protocol.ChangeUnchanged
}

// withChanges adds to each service's status the change the plan said the swap would make,
// so the result tells what was planned next to what happened.
func withChanges(statuses []protocol.ServiceStatus, p protocol.Plan) []protocol.ServiceStatus {
	change := map[string]string{}
	for _, l := range p.Lists() {
		for _, n := range *l.Names {
			change[n] = l.Change
		}
	}
	for i := range statuses {
		statuses[i].Change = change[statuses[i].Name]
	}
	return statuses
}

// withLeftAlone adds to the deployed services' statuses those of the ignored services and
// of the services the plan removed, so the result's table names every service the plan
// does: an ignored one as it runs, a removed one as "removed" once its containers are gone.
func (j *jobRun) withLeftAlone(ctx context.Context, pl plan, statuses []protocol.ServiceStatus) []protocol.ServiceStatus {
	removed := pl.change.Remove
	if !pl.planned {
		removed = nil
	}
	if len(pl.ignoredNames)+len(removed) == 0 {
		return statuses
	}
	// The job's context may be over when the swap failed; the table still matters.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	cs, err := j.containers(lctx, pl.p)
	if err != nil {
		j.say("could not list the containers of the services left alone: %v", err)
		return statuses
	}
	byService := map[string][]compose.Container{}
	for _, c := range cs {
		if !c.OneOff {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	add := func(name, change, gone string) {
		st := serviceStatus(name, byService[name])
		if len(byService[name]) == 0 {
			st.State = gone
		}
		st.Change = change
		statuses = append(statuses, st)
	}
	for _, name := range pl.ignoredNames {
		add(name, protocol.ChangeIgnored, "missing")
	}
	for _, name := range removed {
		add(name, protocol.ChangeRemove, "removed")
	}
	return statuses
}

// containers lists the project's containers for verify: through the Engine API when it is in
// reach (one HTTP call), else `compose ps` (a process, tens of milliseconds more).
func (j *jobRun) containers(ctx context.Context, p compose.Project) ([]compose.Container, error) {
	if j.d.engine != nil {
		cs, err := j.d.engine.Containers(ctx, labelProject, p.Name)
		if err == nil {
			return fromEngine(cs), nil
		}
		if !j.d.engineFailed.Swap(true) {
			j.d.log.Warn("list containers through the engine API; falling back to compose ps (logged once)", "err", err)
		}
	}
	return j.d.compose.PS(ctx, p)
}

// fromEngine reads the engine's container list as compose ps would: the health and exit
// code are in the engine's status text ("Up 3 seconds (healthy)", "Exited (1) 2 seconds
// ago"), which is what `docker ps` shows.
func fromEngine(cs []engine.Container) []compose.Container {
	out := make([]compose.Container, 0, len(cs))
	for _, c := range cs {
		cc := compose.Container{
			ID: c.ID, Project: c.Labels[labelProject], Service: c.Labels[labelService],
			State: c.State, OneOff: c.Labels[labelOneOff] == "True",
		}
		if len(c.Names) > 0 {
			cc.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		cc.Health, cc.ExitCode = parseStatus(c.Status)
		out = append(out, cc)
	}
	return out
}

// parseStatus reads the health and exit code out of an engine status text.
func parseStatus(status string) (health string, exitCode int) {
	switch {
	case strings.HasSuffix(status, "(health: starting)"):
		health = "starting"
	case strings.HasSuffix(status, "(unhealthy)"):
		health = "unhealthy"
	case strings.HasSuffix(status, "(healthy)"):
		health = "healthy"
	}
	if rest, ok := strings.CutPrefix(status, "Exited ("); ok {
		if code, _, ok := strings.Cut(rest, ")"); ok {
			exitCode, _ = strconv.Atoi(code)
		}
	}
	return health, exitCode
}
