package deployer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/compose"
)

// deployState is what the agent remembers of a project between jobs, in
// projects/<p>/state.json, to skip work whose result it already has. It is a cache: lost
// or unreadable, the next job builds and swaps as if it were the first redeploy.
type deployState struct {
	// Builds holds, per service the agent built, the inputs of that build and the image
	// it made.
	Builds map[string]builtImage `json:"builds,omitempty"`
	// Applied is the digest of the compose project (`config` without the override) that
	// the last `up` that finished applied; "" after one failed.
	Applied string `json:"applied,omitempty"`
}

// builtImage is one service's last build.
type builtImage struct {
	Spec   json.RawMessage `json:"spec"`
	Ref    string          `json:"ref"`
	Inputs string          `json:"inputs"`
	Image  string          `json:"image"`
}

func (p projectDirs) state() string { return filepath.Join(p.root, "state.json") }

func (p projectDirs) readState() deployState {
	var s deployState
	b, err := os.ReadFile(p.state())
	if err != nil || json.Unmarshal(b, &s) != nil {
		return deployState{}
	}
	return s
}

// saveState writes the state once the job is over, when it changed. A crash before that,
// or a failed write (logged), loses only the record of this job's work: the next job
// builds and swaps again. The write is a rename of a new file, not synced to disk, for the
// same reason: a lost or emptied state.json is a state.json that is not there.
func (j *jobRun) saveState() {
	if !j.stateChanged {
		return
	}
	b, err := json.Marshal(j.state)
	if err == nil {
		tmp := j.dirs.state() + atomicfile.TempSuffix
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, j.dirs.state())
		}
	}
	if err != nil {
		j.d.log.Warn("save the project's state", "project", j.job.Project.ComposeProject, "err", err)
	}
}

// imageRef is the image compose runs for a service: its image, or for a service with
// build and no image, compose's own name for what it builds, which is also the name a
// preview builds a service's image under (isolatePreview).
func (j *jobRun) imageRef(name string, svc compose.ServiceConfig) string {
	if svc.Image != "" && (j.job.Preview == nil || !svc.HasBuild()) {
		return svc.Image
	}
	return j.job.Project.ComposeProject + "-" + name
}

// pullsOnlyMissing reports whether compose leaves a service's local image alone when one
// exists (pull_policy missing, its default, or never).
func pullsOnlyMissing(policy string) bool {
	switch policy {
	case "", "missing", "if_not_present", "never":
		return true
	}
	return false
}

// inputs is buildInputs of a service's build section, computed once per job.
func (j *jobRun) inputs(ctx context.Context, spec json.RawMessage, ref string) (string, error) {
	var c bytes.Buffer
	if err := json.Compact(&c, spec); err != nil {
		return "", err
	}
	key := ref + "\x00" + c.String()
	if r, ok := j.digests[key]; ok {
		return r.digest, r.err
	}
	d, err := buildInputs(ctx, c.Bytes(), ref, j.d.engine.ImageID)
	if j.digests == nil {
		j.digests = map[string]digestResult{}
	}
	j.digests[key] = digestResult{d, err}
	return d, err
}

type digestResult struct {
	digest string
	err    error
}

// hasImage reports whether ref is still the image id the agent built.
func (j *jobRun) hasImage(ctx context.Context, ref, id string) bool {
	got, err := j.d.engine.ImageID(ctx, ref)
	return err == nil && id != "" && got == id
}

// upToDate reports whether the build step has nothing to do for a deployed service: its
// image was built by the agent from the same inputs and is still there, or it has no
// build and its image is local, which compose would not pull again.
func (j *jobRun) upToDate(ctx context.Context, name string, svc compose.ServiceConfig) bool {
	if !pullsOnlyMissing(svc.PullPolicy) {
		return false
	}
	ref := j.imageRef(name, svc)
	if !svc.HasBuild() {
		id, err := j.d.engine.ImageID(ctx, ref)
		return err == nil && id != ""
	}
	rec, ok := j.state.Builds[name]
	if !ok {
		return false
	}
	d, err := j.inputs(ctx, svc.Build, ref)
	if err != nil && !errors.Is(err, errUnknowable) {
		j.say("could not read the build inputs of %s (%v); building it", name, err)
	}
	return err == nil && d == rec.Inputs && j.hasImage(ctx, ref, rec.Image)
}

// expectsNoBuild guesses, before the compose file is read, that the build step will have
// nothing to do: an `up` of this agent finished last, and every image it built still has
// the same inputs. A wrong guess costs time, never a wrong deploy: the build step decides
// again once the compose file is read.
func (j *jobRun) expectsNoBuild(ctx context.Context) bool {
	if j.d.engine == nil || j.state.Applied == "" {
		return false
	}
	for _, rec := range j.state.Builds {
		d, err := j.inputs(ctx, rec.Spec, rec.Ref)
		if err != nil || d != rec.Inputs || !j.hasImage(ctx, rec.Ref, rec.Image) {
			return false
		}
	}
	return true
}

// recordBuilds remembers, after a build step that went over them, the inputs and image of
// the buildable services, for the next job.
func (j *jobRun) recordBuilds(ctx context.Context, pl plan, built []string) {
	if j.d.engine == nil || len(built) == 0 {
		return
	}
	if j.state.Builds == nil {
		j.state.Builds = map[string]builtImage{}
	}
	for _, name := range built {
		svc := pl.resolved.Services[name]
		ref := j.imageRef(name, svc)
		d, err := j.inputs(ctx, svc.Build, ref)
		id, ierr := j.d.engine.ImageID(ctx, ref)
		if err != nil || ierr != nil || id == "" {
			delete(j.state.Builds, name)
			continue
		}
		var c bytes.Buffer
		_ = json.Compact(&c, svc.Build)
		j.state.Builds[name] = builtImage{Spec: c.Bytes(), Ref: ref, Inputs: d, Image: id}
	}
	j.stateChanged = true
}

// toBuild returns the deployed services the build step must go over, and which of them
// it builds.
func (j *jobRun) toBuild(ctx context.Context, pl plan) (todo, building []string) {
	for _, t := range pl.targets {
		svc := pl.resolved.Services[t.name]
		if j.d.engine != nil && j.upToDate(ctx, t.name, svc) {
			continue
		}
		todo = append(todo, t.name)
		if svc.HasBuild() {
			building = append(building, t.name)
		}
	}
	if skipped := len(pl.targets) - len(todo); skipped > 0 && len(todo) > 0 {
		j.say("images up to date: %s", strings.Join(upToDateNames(pl.targets, todo), ", "))
	}
	return todo, building
}

func upToDateNames(targets []target, todo []string) []string {
	var out []string
	for _, t := range targets {
		if !slices.Contains(todo, t.name) {
			out = append(out, t.name)
		}
	}
	return out
}
