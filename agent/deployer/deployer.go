// Package deployer runs one DEPLOY job: it fetches the commit's tarball into the project's
// stable working directory, injects the secrets through a compose override, builds, plans
// what the swap will change, runs the hooks, swaps the containers, verifies them and rolls
// back to the previous good SHA when the new one fails. docs/agent-deploy.md describes the steps and outcomes.
package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/protocol"
)

// Defaults for zero Options fields and job settings.
const (
	DefaultTimeout         = 5 * time.Minute
	DefaultGracePeriod     = 60 * time.Second
	DefaultMaxTarballBytes = 512 << 20
	// minRollbackTimeout bounds a rollback when the job's own timeout is shorter.
	minRollbackTimeout = time.Minute
)

// composeFileNames are compose's own default file names, in its order of preference.
var composeFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

var (
	projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	shaRE         = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

// errJobTimeout is the cause of a job context that ran out of time.
var errJobTimeout = errors.New("job timed out")

// Options configures a Deployer.
type Options struct {
	// DataDir holds projects/<compose_project>/{src,releases,run}.
	DataDir string
	// Compose runs docker compose; a default Runner when nil.
	Compose *compose.Runner
	// DefaultGracePeriod is how long a service may take to become running and healthy
	// when stagely.yaml does not say; DefaultGracePeriod when zero.
	DefaultGracePeriod time.Duration
	// MaxTarballBytes bounds the download and the extracted content; DefaultMaxTarballBytes when zero.
	MaxTarballBytes int64
	// HTTPClient fetches tarballs; a client without timeout (the job's context bounds it) when nil.
	HTTPClient *http.Client
	// Logger receives the agent's own log; never secrets.
	Logger *slog.Logger
	// Engine reads containers and images for the plan; when nil, a client for DOCKER_HOST
	// (the default socket when unset), or none when DOCKER_HOST is one it cannot reach
	// (jobs then go without a plan).
	Engine *engine.Client
	// Previews routes pull request previews (preview.go); nil refuses previews with routes.
	Previews PreviewRouter
}

// Deployer runs deploy jobs, one at a time per compose project.
type Deployer struct {
	dataDir  string
	compose  *compose.Runner
	grace    time.Duration
	maxBytes int64
	client   *http.Client
	log      *slog.Logger
	locks    *projectLocks
	engine   *engine.Client
	previews PreviewRouter
	// engineFailed is set once a failed engine call was logged.
	engineFailed atomic.Bool
}

// New returns a Deployer.
func New(opts Options) *Deployer {
	d := &Deployer{
		dataDir:  opts.DataDir,
		compose:  opts.Compose,
		grace:    opts.DefaultGracePeriod,
		maxBytes: opts.MaxTarballBytes,
		client:   opts.HTTPClient,
		log:      opts.Logger,
		locks:    newProjectLocks(),
		engine:   opts.Engine,
		previews: opts.Previews,
	}
	if d.compose == nil {
		d.compose = compose.NewRunner(compose.RunnerOptions{})
	}
	if d.grace <= 0 {
		d.grace = DefaultGracePeriod
	}
	if d.maxBytes <= 0 {
		d.maxBytes = DefaultMaxTarballBytes
	}
	if d.client == nil {
		d.client = &http.Client{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.engine == nil {
		c, err := engine.New(os.Getenv("DOCKER_HOST"), os.Getenv("DOCKER_TLS_VERIFY") != "")
		if err != nil {
			d.log.Warn("deploys go without a plan: the Docker Engine API is out of reach", "err", err)
		}
		d.engine = c
	}
	return d
}

// Deploy runs one job and returns its result; it never panics. Cancelling ctx is the
// server's CANCEL: the running command is stopped and, when the swap had begun, the
// previous SHA is rolled back in. The job's own timeout is job.Config.Timeout.
func (d *Deployer) Deploy(ctx context.Context, job protocol.Deploy, ev Events) (res protocol.JobResult) {
	start := time.Now()
	// The source token is masked like a secret: it reaches no log line either.
	m := newMasker(append(slices.Clone(job.Secrets), protocol.Secret{Key: "source token", Value: job.Source.Token}))
	j := &jobRun{d: d, job: job, ev: maskedEvents{mu: &sync.Mutex{}, ev: ev, m: m}, mask: m}
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("deploy panicked", "job_id", job.JobID, "panic", m.mask(fmt.Sprint(r)), "stack", string(debug.Stack()))
			res = protocol.JobResult{Status: protocol.StatusFailure,
				Error: "The agent hit an internal error during the deploy; nothing more was changed. Check the agent's log and redeploy."}
		}
		j.cleanup()
		res.JobID = job.JobID
		res.DurationMS = time.Since(start).Milliseconds()
		res.Error = m.mask(res.Error)
		for i := range res.Services {
			for k, l := range res.Services[i].LogTail {
				res.Services[i].LogTail[k] = m.mask(l)
			}
		}
		if res.Services == nil {
			res.Services = []protocol.ServiceStatus{}
		}
		d.log.Info("deploy finished", "job_id", job.JobID, "project", job.Project.ComposeProject,
			"sha", job.SHA, "status", res.Status, "duration_ms", res.DurationMS)
	}()
	if job.Preview != nil {
		return j.runPreview(ctx)
	}
	return j.run(ctx)
}

// jobRun is the state of one job.
type jobRun struct {
	d    *Deployer
	job  protocol.Deploy
	ev   Events
	mask masker
	dirs projectDirs
	// overrides are written for this job and removed by cleanup whatever happens.
	overrides []string
	// swapped is set once `up` has started: from then on a failure needs a rollback.
	swapped bool
	// srcSHA is what the working directory held before the job, restored on an early failure.
	srcSHA string
	// warning is a successful job's Error: what went wrong without undoing the deploy.
	warning string
	// state is the project's deployState, read when the job starts and saved when it ends
	// if stateChanged.
	state        deployState
	stateChanged bool
	// digests are the build inputs computed in this job, by image and build section.
	digests map[string]digestResult
}

func (j *jobRun) say(format string, args ...any) {
	j.ev.Log(protocol.StreamSystem, fmt.Sprintf(format, args...))
}

func (j *jobRun) lines(stream, line string) { j.ev.Log(stream, line) }

func (j *jobRun) cleanup() {
	for _, f := range j.overrides {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.d.log.Error("remove override", "job_id", j.job.JobID, "err", err)
		}
	}
	j.overrides = nil
}

func (j *jobRun) run(ctx context.Context) protocol.JobResult {
	job := j.job
	if err := validateJob(job); err != nil {
		return protocol.JobResult{Status: protocol.StatusFailure, Error: "The agent refused an invalid DEPLOY: " + err.Error() + ". Check the project's settings and redeploy."}
	}
	j.dirs = projectDirs{root: filepath.Join(j.d.dataDir, "projects", job.Project.ComposeProject)}

	unlock, err := j.d.locks.lock(ctx, job.Project.ComposeProject)
	if err != nil {
		return protocol.JobResult{Status: protocol.StatusCancelled, Error: "Cancelled while waiting for another deploy of this project to finish."}
	}
	defer unlock()
	// An override left behind by a killed agent holds secrets: remove it before anything else.
	if err := os.RemoveAll(j.dirs.run()); err != nil {
		return protocol.JobResult{Status: protocol.StatusFailure, Error: fmt.Sprintf("Could not clear %s: %v. Check the agent's data directory permissions.", j.dirs.run(), err)}
	}

	j.state = j.dirs.readState()
	defer j.saveState()

	timeout := job.Config.Timeout.Std()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	jobCtx, cancel := context.WithTimeoutCause(ctx, timeout, errJobTimeout)
	defer cancel()

	statuses, err := j.deploy(jobCtx)
	if err == nil {
		j.say("deployed %s", short(job.SHA))
		return protocol.JobResult{Status: protocol.StatusSuccess, Services: statuses, Error: j.warning}
	}

	// The job's own context may be over; what follows runs on a fresh one.
	timedOut := errors.Is(context.Cause(jobCtx), errJobTimeout) && ctx.Err() == nil
	cancelled := ctx.Err() != nil
	cause := describe(err, timedOut, cancelled, timeout)
	j.say("deploy of %s failed: %s", short(job.SHA), cause)
	status := protocol.StatusFailure
	switch {
	case cancelled:
		status = protocol.StatusCancelled
	case timedOut:
		status = protocol.StatusTimedOut
	}
	rbTimeout := max(timeout, minRollbackTimeout)
	rbCtx, rbCancel := context.WithTimeout(context.WithoutCancel(ctx), rbTimeout)
	defer rbCancel()

	if !j.swapped {
		j.restoreSource()
		return protocol.JobResult{Status: status, Error: cause + ". Nothing was swapped: the running version is untouched.", Services: statuses}
	}
	if job.Previous == nil {
		return protocol.JobResult{Status: status, Services: statuses,
			Error: cause + ". This was the project's first deploy, so there is nothing to roll back to; the containers are left as they are for inspection. Fix the problem and push again."}
	}
	rbStatuses, rbErr := j.rollback(rbCtx)
	if rbErr != nil {
		return protocol.JobResult{Status: protocol.StatusFailure, Services: mergeLogTails(rbStatuses, statuses),
			Error: fmt.Sprintf("%s. Rolling back to %s also failed: %s. The project may be down; check the log, fix it and redeploy.", cause, short(job.Previous.SHA), describe(rbErr, false, false, rbTimeout))}
	}
	if !cancelled {
		status = protocol.StatusRolledBack
	}
	return protocol.JobResult{Status: status, Services: mergeLogTails(rbStatuses, statuses),
		Error: fmt.Sprintf("%s. Rolled back to %s, which is serving again.", cause, short(job.Previous.SHA))}
}

// deploy runs the steps up to success; its error says which step failed.
func (j *jobRun) deploy(ctx context.Context) ([]protocol.ServiceStatus, error) {
	job := j.job
	j.ev.Phase(protocol.PhaseFetching)
	j.say("fetching %s at %s", job.Repo, short(job.SHA))
	if err := j.fetch(ctx); err != nil {
		return nil, err
	}

	j.ev.Phase(protocol.PhaseBuilding)
	before := j.containersBefore(ctx)
	pl, err := j.prepareAndBuild(ctx, job.Config)
	if err != nil {
		return nil, err
	}
	pl.change, pl.planned = j.makePlan(ctx, pl, before)
	statuses, err := j.swap(ctx, pl)
	if pl.planned {
		statuses = withChanges(statuses, pl.change)
	}
	if len(statuses) > 0 {
		statuses = j.withLeftAlone(ctx, pl, statuses)
	}
	return statuses, err
}

// swap runs the pre_deploy hooks, swaps the containers, verifies them and runs the
// post_deploy hooks. A plan that changes nothing runs no hook: there is nothing to migrate
// for and nothing new to announce (docs/agent-deploy.md).
func (j *jobRun) swap(ctx context.Context, pl plan) ([]protocol.ServiceStatus, error) {
	job := j.job
	still := pl.planned && pl.change.Empty()
	if still && len(job.Config.Hooks.PreDeploy)+len(job.Config.Hooks.PostDeploy) > 0 {
		j.say("nothing to change: the hooks do not run")
	}
	if len(job.Config.Hooks.PreDeploy) > 0 && !still {
		j.ev.Phase(protocol.PhasePreDeploy)
		if err := j.startHookDependencies(ctx, pl, job.Config.Hooks.PreDeploy); err != nil {
			return nil, err
		}
		if err := j.hooks(ctx, pl.p, "pre_deploy", job.Config.Hooks.PreDeploy); err != nil {
			return nil, err
		}
	}

	j.ev.Phase(protocol.PhaseDeploying)
	if err := j.up(ctx, pl, job.Config.Strategy); err != nil {
		return nil, err
	}

	j.ev.Phase(protocol.PhaseVerifying)
	statuses, err := j.verify(ctx, pl.p, pl.targets)
	if err != nil {
		return j.withLogTail(ctx, pl.p, statuses, err), err
	}

	if len(job.Config.Hooks.PostDeploy) > 0 && !still {
		j.ev.Phase(protocol.PhasePostDeploy)
		if err := j.hooks(ctx, pl.p, "post_deploy", job.Config.Hooks.PostDeploy); err != nil {
			if ctx.Err() != nil {
				return statuses, err
			}
			// The new version is live and healthy: a failed notification does not undo it.
			j.warning = postDeployWarning(err)
		}
	}
	if err := j.dirs.pruneReleases(job.SHA, prevSHA(job)); err != nil {
		j.d.log.Warn("prune releases", "project", job.Project.ComposeProject, "err", err)
	}
	return statuses, nil
}

// fetch downloads and extracts the tarball, keeps it as a release and syncs it into src.
func (j *jobRun) fetch(ctx context.Context) error {
	if err := os.MkdirAll(j.dirs.root, 0o755); err != nil {
		return fmt.Errorf("create the project directory: %w", err)
	}
	staging, err := os.MkdirTemp(j.dirs.root, "staging-")
	if err != nil {
		return fmt.Errorf("create a staging directory: %w", err)
	}
	defer os.RemoveAll(staging)
	files, err := fetchTarball(ctx, j.d.client, j.job.Source.TarballURL, j.job.Source.Token, staging, j.d.maxBytes)
	if err != nil {
		return err
	}
	j.say("fetched %d files", len(files))
	if err := j.dirs.storeRelease(staging, j.job.SHA, files); err != nil {
		return err
	}
	if b, err := os.ReadFile(j.dirs.srcSHA()); err == nil {
		j.srcSHA = strings.TrimSpace(string(b))
	}
	return j.sync(j.job.SHA)
}

func (j *jobRun) sync(sha string) error {
	if err := j.dirs.syncRelease(sha); err != nil {
		return err
	}
	if err := os.WriteFile(j.dirs.srcSHA(), []byte(sha+"\n"), 0o644); err != nil {
		return fmt.Errorf("record the working directory's SHA: %w", err)
	}
	// The build inputs computed so far in this job read the commit that was here before
	// (a rollback syncs the previous one into the same folder): they no longer hold.
	j.digests = nil
	return nil
}

// restoreSource puts back the source the running containers came from after a failure
// before the swap, so bind-mounted files match the running version again.
func (j *jobRun) restoreSource() {
	if j.srcSHA == "" || j.srcSHA == j.job.SHA || !j.dirs.hasRelease(j.srcSHA) {
		return
	}
	if err := j.sync(j.srcSHA); err != nil {
		j.say("could not restore the working directory to %s: %v", short(j.srcSHA), err)
	}
}

// plan is what prepare decided for one compose run.
type plan struct {
	p         compose.Project
	targets   []target
	buildable []string
	// ignored is set when some service of the compose file is left alone.
	ignored bool
	// ignoredNames are the services left alone.
	ignoredNames []string
	resolved     *compose.Config
	// hashes are compose's configuration hashes of the deployed services, when the job
	// computes a plan.
	hashes map[string]string
	// change is the plan; planned says whether there is one.
	change  protocol.Plan
	planned bool
}

// baseProject is the compose project of file without the override.
func (j *jobRun) baseProject(file string) compose.Project {
	return compose.Project{Name: j.job.Project.ComposeProject, Files: []string{file}, Dir: filepath.Dir(file)}
}

// prepare resolves the compose project of cfg in src, decides the services to deploy and
// writes the override carrying the secrets. With hash, it also asks compose for each
// service's configuration hash, for the plan.
func (j *jobRun) prepare(ctx context.Context, cfg protocol.JobConfig, hash bool) (plan, error) {
	file, err := composeFile(j.dirs.src(), cfg.ComposeFile)
	if err != nil {
		return plan{}, err
	}
	base := j.baseProject(file)
	resolved, err := j.d.compose.Config(ctx, base, j.lines)
	if err != nil {
		return plan{}, fmt.Errorf("read the compose file %s: %w", cfg.ComposeFile, err)
	}
	pl, names, err := j.targets(resolved, cfg)
	if err != nil {
		return plan{}, err
	}
	env, skipped := serviceEnv(j.job.Secrets, names)
	for _, s := range skipped {
		j.say("secret %s names a service the compose file lacks or ignores; not injected", s)
	}
	hash = hash && j.planning(ctx)
	if hash {
		withResolvedEnv(env, resolved)
	}
	content, err := renderOverride(env, hash)
	if err != nil {
		return plan{}, err
	}
	override, err := writeOverride(j.dirs.run(), content)
	if err != nil {
		return plan{}, err
	}
	j.overrides = append(j.overrides, override)
	pl.p = base
	if pl.p.Files, err = j.previewFiles(resolved, []string{file, override}); err != nil {
		return plan{}, err
	}
	pl.resolved = resolved
	if hash {
		if pl.hashes, err = j.d.compose.Hashes(ctx, pl.p, j.lines); err != nil {
			j.say("could not read the services' configuration hashes (%v); deploying without a plan", err)
		}
	}
	return pl, nil
}

// targets decides, from the resolved compose file and cfg, the services a job deploys.
func (j *jobRun) targets(resolved *compose.Config, cfg protocol.JobConfig) (plan, []string, error) {
	var pl plan
	var names []string
	for _, name := range resolved.Names() {
		sc := cfg.Services[name]
		if sc.Ignore {
			j.say("service %s is ignored: left alone", name)
			pl.ignored = true
			pl.ignoredNames = append(pl.ignoredNames, name)
			continue
		}
		grace := sc.HealthCheckGracePeriod.Std()
		if grace <= 0 {
			grace = j.d.grace
		}
		pl.targets = append(pl.targets, target{name: name, health: resolved.Services[name].HasHealthCheck(), grace: grace})
		if resolved.Services[name].HasBuild() {
			pl.buildable = append(pl.buildable, name)
		}
		names = append(names, name)
	}
	for name := range cfg.Services {
		if _, ok := resolved.Services[name]; !ok {
			j.say("stagely.yaml configures service %s, which the compose file lacks", name)
		}
	}
	if len(pl.targets) == 0 {
		return plan{}, nil, errors.New("the compose file has no service to deploy (all are ignored or none are defined)")
	}
	return pl, names, nil
}

// prepareAndBuild runs prepare and build. When the project was deployed before, no
// service is ignored and the build step is expected to build something, the build step
// does not need prepare's result, and both run at once: build then goes over every
// service of the compose file without the override (it
// only builds and pulls images, which the override does not touch). A container it creates
// for a service added by this commit lacks the secrets, so `up` recreates it; that is the
// price of hiding `config` behind the build step on every other deploy.
func (j *jobRun) prepareAndBuild(ctx context.Context, cfg protocol.JobConfig) (plan, error) {
	// A preview goes step by step: its compose file is checked before anything runs.
	if j.job.Previous == nil || ignoresAny(cfg) || j.job.Preview != nil || j.expectsNoBuild(ctx) {
		pl, err := j.prepare(ctx, cfg, true)
		if err != nil {
			return plan{}, err
		}
		return pl, j.build(ctx, pl)
	}
	file, err := composeFile(j.dirs.src(), cfg.ComposeFile)
	if err != nil {
		return plan{}, err
	}
	base := j.baseProject(file)
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	buildErr := make(chan error, 1)
	go func() {
		err := j.d.compose.Run(buildCtx, base, "up", []string{"--no-start", "--no-recreate", "--build"}, j.lines)
		if err != nil {
			err = fmt.Errorf("build or pull the images: %w", err)
		}
		buildErr <- err
	}()
	pl, err := j.prepare(ctx, cfg, true)
	if err != nil {
		// Both read the same compose file: its error is the one worth reporting, and a
		// build of a project that will not be deployed is not worth finishing.
		cancelBuild()
		<-buildErr
		return plan{}, err
	}
	if len(pl.buildable) > 0 {
		j.say("building %s", strings.Join(pl.buildable, ", "))
	}
	if err := <-buildErr; err != nil {
		return plan{}, err
	}
	j.recordBuilds(ctx, pl, pl.buildable)
	return pl, nil
}

func ignoresAny(cfg protocol.JobConfig) bool {
	for _, sc := range cfg.Services {
		if sc.Ignore {
			return true
		}
	}
	return false
}

// build builds the images of the deployed services and pulls the missing ones, without
// stopping or recreating anything: `up --no-start --no-recreate --build` creates only the
// containers of services that have none yet. A build or registry failure therefore ends
// the job while the running version is untouched. It leaves out the services whose
// images are up to date (upToDate): for them it would only repeat cached steps.
func (j *jobRun) build(ctx context.Context, pl plan) error {
	todo, building := j.toBuild(ctx, pl)
	if len(todo) == 0 {
		j.say("images up to date: nothing to build or pull")
		return nil
	}
	if len(building) > 0 {
		j.say("building %s", strings.Join(building, ", "))
	}
	args := []string{"--no-start", "--no-recreate", "--no-deps"}
	if len(building) > 0 {
		args = append(args, "--build")
	}
	args = append(args, todo...)
	if err := j.d.compose.Run(ctx, pl.p, "up", args, j.lines); err != nil {
		return fmt.Errorf("build or pull the images: %w", err)
	}
	j.recordBuilds(ctx, pl, building)
	return nil
}

// up swaps the containers: compose recreates exactly the services whose configuration or
// image changed. stop-first first stops the services the plan recreates (all deployed
// services when there is no plan), so an old and a new container of one service never
// run side by side, and unchanged ones keep running.
func (j *jobRun) up(ctx context.Context, pl plan, strategy string) error {
	if pl.planned && pl.change.Empty() && j.state.Applied != "" && j.state.Applied == pl.resolved.Digest {
		// compose would find nothing to do either: no container changes, and the project's
		// networks and volumes are those the last `up` applied.
		j.say("nothing to change: no container is touched")
		return nil
	}
	j.swapped = true
	if strategy == protocol.StrategyStopFirst {
		stop := names(pl.targets)
		if pl.planned {
			stop = pl.change.Recreate
		}
		if len(stop) > 0 {
			j.say("stop-first: stopping %s", strings.Join(stop, ", "))
			if err := j.d.compose.Run(ctx, pl.p, "stop", stop, j.lines); err != nil {
				return fmt.Errorf("stop the running services: %w", err)
			}
		}
	}
	args := []string{"-d", "--remove-orphans"}
	if pl.ignored {
		// Naming the services keeps ignored ones out; --no-deps keeps compose from
		// recreating an ignored service another one depends on.
		args = append(args, "--no-deps")
		args = append(args, names(pl.targets)...)
	}
	err := j.d.compose.Run(ctx, pl.p, "up", args, j.lines)
	applied := pl.resolved.Digest
	if err != nil {
		// A half-done `up` applied neither project for sure.
		applied = ""
	}
	if j.state.Applied != applied {
		j.state.Applied, j.stateChanged = applied, true
	}
	if err != nil {
		return fmt.Errorf("start the new containers: %w", err)
	}
	return nil
}

// withLogTail adds the failing service's last log lines to its status.
func (j *jobRun) withLogTail(ctx context.Context, p compose.Project, statuses []protocol.ServiceStatus, err error) []protocol.ServiceStatus {
	var ve *verifyError
	if !errors.As(err, &ve) {
		return statuses
	}
	// The job's context may be the reason verify ended; the logs still matter.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	out, lerr := j.d.compose.Output(lctx, p, "logs", []string{"--no-color", "--no-log-prefix", "--tail", fmt.Sprint(logTailLines), ve.service}, nil)
	if lerr != nil {
		j.say("could not read the logs of %s: %v", ve.service, lerr)
		return statuses
	}
	tail := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(tail) == 1 && tail[0] == "" {
		tail = nil
	}
	j.say("last log lines of %s:", ve.service)
	for _, l := range tail {
		j.ev.Log(protocol.StreamStdout, l)
	}
	for i := range statuses {
		if statuses[i].Name == ve.service {
			statuses[i].LogTail = tail
		}
	}
	ve.tail = tail
	return statuses
}

// rollback brings back the previous SHA with its config and the same secrets.
func (j *jobRun) rollback(ctx context.Context) ([]protocol.ServiceStatus, error) {
	prev := j.job.Previous
	j.ev.Phase(protocol.PhaseRollingBack)
	j.say("rolling back to %s", short(prev.SHA))
	if !j.dirs.hasRelease(prev.SHA) {
		return nil, fmt.Errorf("the source of %s is no longer kept on this server", short(prev.SHA))
	}
	if err := j.sync(prev.SHA); err != nil {
		return nil, err
	}
	pl, err := j.prepare(ctx, prev.Config, false)
	if err != nil {
		return nil, err
	}
	// The previous images were built before; a build here only repeats cached steps.
	if err := j.build(ctx, pl); err != nil {
		return nil, err
	}
	if err := j.up(ctx, pl, protocol.StrategyRecreate); err != nil {
		return nil, err
	}
	statuses, err := j.verify(ctx, pl.p, pl.targets)
	if err != nil {
		return j.withLogTail(ctx, pl.p, statuses, err), err
	}
	return statuses, nil
}

// mergeLogTails keeps the failed deploy's log tails, and its plan's changes, in the
// rollback's statuses.
func mergeLogTails(now, failed []protocol.ServiceStatus) []protocol.ServiceStatus {
	if len(now) == 0 {
		return failed
	}
	for _, f := range failed {
		for i := range now {
			if now[i].Name == f.Name && now[i].Change == "" {
				now[i].Change = f.Change
			}
		}
		if len(f.LogTail) == 0 {
			continue
		}
		for i := range now {
			if now[i].Name == f.Name && len(now[i].LogTail) == 0 {
				now[i].LogTail = f.LogTail
			}
		}
	}
	return now
}

// describe turns a step's error into the first sentence of the result's Error.
func describe(err error, timedOut, cancelled bool, timeout time.Duration) string {
	msg := errorText(err)
	switch {
	case cancelled:
		return "The deploy was cancelled (" + msg + ")"
	case timedOut:
		return fmt.Sprintf("The deploy timed out after %s (%s)", timeout, msg)
	default:
		return "The deploy failed: " + msg
	}
}

// errorText is err's message with, for a service that did not come up or a hook that
// failed, its last output lines under it.
func errorText(err error) string {
	var ve *verifyError
	var he *hookError
	switch {
	case errors.As(err, &ve):
		if len(ve.tail) > 0 {
			return ve.Error() + ". Its last log lines:\n" + strings.Join(ve.tail, "\n") + "\n"
		}
		return ve.Error()
	case errors.As(err, &he):
		if len(he.tail) > 0 {
			return he.Error() + ". Its last output lines:\n" + strings.Join(he.tail, "\n") + "\n"
		}
		return he.Error()
	}
	return err.Error()
}

// postDeployWarning is the Error of a successful job whose post_deploy hook failed.
func postDeployWarning(err error) string {
	msg := "The deploy succeeded, but the " + err.Error() + ". The new version is live and was not rolled back: post_deploy hooks run after the swap (set continue_on_error: true when this failure is expected)."
	if he := (*hookError)(nil); errors.As(err, &he) && len(he.tail) > 0 {
		msg += "\nIts last output lines:\n" + strings.Join(he.tail, "\n")
	}
	return msg
}

func validateJob(job protocol.Deploy) error {
	switch {
	case job.JobID == "":
		return errors.New("the job has no id")
	case !projectNameRE.MatchString(job.Project.ComposeProject):
		return fmt.Errorf("the compose project name %q is not valid (lowercase letters, digits, - and _)", job.Project.ComposeProject)
	case !shaRE.MatchString(job.SHA):
		return fmt.Errorf("the commit SHA %q is not valid", job.SHA)
	case job.Previous != nil && !shaRE.MatchString(job.Previous.SHA):
		return fmt.Errorf("the previous commit SHA %q is not valid", job.Previous.SHA)
	case job.Source.TarballURL == "":
		return errors.New("the job has no tarball URL")
	}
	return nil
}

// composeFile returns the absolute path of the compose file inside src.
func composeFile(src, rel string) (string, error) {
	if rel != "" {
		clean := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(rel, "./")))
		if !filepath.IsLocal(clean) {
			return "", fmt.Errorf("the compose file %q is outside the repository", rel)
		}
		file := filepath.Join(src, clean)
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("the compose file %q is not in the repository at this commit", rel)
		}
		return file, nil
	}
	for _, name := range composeFileNames {
		file := filepath.Join(src, name)
		if _, err := os.Stat(file); err == nil {
			return file, nil
		}
	}
	return "", fmt.Errorf("no compose file in the repository root (looked for %s)", strings.Join(composeFileNames, ", "))
}

func names(targets []target) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.name
	}
	return out
}

func prevSHA(job protocol.Deploy) string {
	if job.Previous == nil {
		return ""
	}
	return job.Previous.SHA
}

func short(sha string) string { return sha[:min(len(sha), 7)] }
