package deployer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/protocol"
)

// PreviewRouter points the host names of pull request previews at their containers
// through the reverse proxy; *previewroute.Router is the real one.
type PreviewRouter interface {
	// Check says why routes cannot be set, in words a user can act on.
	Check(ctx context.Context) error
	// Set points a preview's hosts at its services' running containers.
	Set(ctx context.Context, project string, number int, routes []protocol.PreviewRoute) error
	// Remove deletes a preview's routes.
	Remove(ctx context.Context, project string) error
}

// hostRE is a lowercase DNS host name.
var hostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// previewDownTimeout bounds a preview's teardown.
const previewDownTimeout = 5 * time.Minute

// runPreview runs a DEPLOY with Preview set: a teardown, or a deploy of the preview's own
// compose project followed by its routes.
func (j *jobRun) runPreview(ctx context.Context) protocol.JobResult {
	job := j.job
	p := job.Preview
	if err := validatePreview(job); err != nil {
		return protocol.JobResult{Status: protocol.StatusFailure, Error: "The agent refused an invalid preview DEPLOY: " + err.Error() + ". Check the project's settings and redeploy."}
	}
	// A teardown and a deploy of one preview never overlap, routes included: the route
	// lock is held around the deploy's own project lock.
	unlock, err := j.d.locks.lock(ctx, "preview-routes:"+job.Project.ComposeProject)
	if err != nil {
		return protocol.JobResult{Status: protocol.StatusCancelled, Error: "Cancelled while waiting for another job of this preview to finish."}
	}
	defer unlock()
	if p.Stop {
		return j.stopPreview(ctx)
	}
	if len(p.Routes) > 0 {
		if err := j.previewRouterReady(ctx); err != nil {
			return protocol.JobResult{Status: protocol.StatusFailure,
				Error: fmt.Sprintf("The preview of pull request #%d was not deployed: %v. Nothing was started.", p.Number, err)}
		}
	}
	res := j.run(ctx)
	if res.Status != protocol.StatusSuccess && res.Status != protocol.StatusRolledBack {
		return res
	}
	if err := j.routePreview(ctx); err != nil {
		res.Status = protocol.StatusFailure
		res.Error = strings.TrimSpace(res.Error + fmt.Sprintf(" The preview of pull request #%d is running, but its host names could not be routed: %s.", p.Number, j.mask.mask(err.Error())))
	}
	return res
}

func (j *jobRun) previewRouterReady(ctx context.Context) error {
	if j.d.previews == nil {
		return errors.New("this agent was started without preview routing")
	}
	return j.d.previews.Check(ctx)
}

// routePreview points the preview's hosts at the containers that now serve it; a preview
// without routes has any earlier ones removed.
func (j *jobRun) routePreview(ctx context.Context) error {
	p := j.job.Preview
	name := j.job.Project.ComposeProject
	if j.d.previews == nil {
		if len(p.Routes) == 0 {
			return nil
		}
		return errors.New("this agent was started without preview routing")
	}
	if len(p.Routes) == 0 {
		return j.d.previews.Remove(ctx, name)
	}
	// The job's context may be over; routing the containers that now run is still due.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := j.d.previews.Set(rctx, name, p.Number, p.Routes); err != nil {
		return err
	}
	for _, r := range p.Routes {
		j.say("preview #%d: %s -> service %s, port %d", p.Number, r.Host, r.Service, r.Port)
	}
	return nil
}

// stopPreview tears a preview down: its routes, its containers, networks and volumes
// (found by compose's project label, so no source files are needed), and its files.
func (j *jobRun) stopPreview(ctx context.Context) protocol.JobResult {
	job := j.job
	name := job.Project.ComposeProject
	j.dirs = projectDirs{root: filepath.Join(j.d.dataDir, "projects", name)}
	unlock, err := j.d.locks.lock(ctx, name)
	if err != nil {
		return protocol.JobResult{Status: protocol.StatusCancelled, Error: "Cancelled while waiting for another deploy of this preview to finish."}
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, previewDownTimeout)
	defer cancel()
	fail := func(what string, err error) protocol.JobResult {
		j.say("teardown of preview #%d failed: %s: %v", job.Preview.Number, what, err)
		return protocol.JobResult{Status: protocol.StatusFailure,
			Error: fmt.Sprintf("The teardown of the preview of pull request #%d did not finish: %s: %v. Stop it again to retry.", job.Preview.Number, what, err)}
	}
	j.ev.Phase(protocol.PhaseDeploying)
	warning := ""
	if j.d.previews != nil {
		j.say("removing the routes of preview #%d", job.Preview.Number)
		// Its record is gone even when Caddy is out of reach: the routes then go at the
		// next sync, and an unreachable Caddy must not keep the containers alive.
		if err := j.d.previews.Remove(ctx, name); err != nil {
			j.say("could not remove the routes from Caddy now: %v", err)
			warning = fmt.Sprintf("The preview of pull request #%d was removed, but Caddy could not be told yet (%v); the agent removes its routes when Caddy answers again.", job.Preview.Number, err)
		}
	}
	j.say("removing the containers, networks and volumes of %s", name)
	// An empty directory: compose finds the project by its label, not by a file it might
	// find in the working directory.
	empty, err := os.MkdirTemp(j.d.dataDir, "down-")
	if err != nil {
		return fail("create a scratch directory", err)
	}
	defer os.RemoveAll(empty)
	p := compose.Project{Name: name, Dir: empty}
	if err := j.d.compose.Run(ctx, p, "down", []string{"--volumes", "--remove-orphans"}, j.lines); err != nil {
		return fail("docker compose down", err)
	}
	j.removePreviewImages(ctx, name)
	if err := os.RemoveAll(j.dirs.root); err != nil {
		return fail("delete its files", err)
	}
	j.say("preview #%d removed", job.Preview.Number)
	return protocol.JobResult{Status: protocol.StatusSuccess, Error: warning}
}

// removePreviewImages removes the images the preview built: compose and the preview's
// override name them <project>-<service>, and nothing else is named so. An image a
// container still uses is kept (docker image rm without --force refuses it), so an image
// production runs is never removed. Failures are logged: the teardown has done its part.
func (j *jobRun) removePreviewImages(ctx context.Context, name string) {
	out, err := exec.CommandContext(ctx, "docker", "image", "ls", "--filter", "reference="+name+"-*", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		j.say("could not list the images of %s: %v", name, err)
		return
	}
	for _, ref := range strings.Fields(string(out)) {
		if !strings.HasPrefix(ref, name+"-") || strings.HasSuffix(ref, ":<none>") {
			continue
		}
		if b, err := exec.CommandContext(ctx, "docker", "image", "rm", ref).CombinedOutput(); err != nil {
			j.say("kept image %s: %s", ref, strings.TrimSpace(string(b)))
			continue
		}
		j.say("removed image %s", ref)
	}
}

// isolatePreview checks that a preview's compose project shares nothing with production
// or other previews, and returns the override that removes every host port binding
// (`ports: !reset []`, compose 2.24 and later). It returns nil for a job that is not a preview.
func (j *jobRun) isolatePreview(resolved *compose.Config) ([]byte, error) {
	p := j.job.Preview
	if p == nil {
		return nil, nil
	}
	name := j.job.Project.ComposeProject
	for _, svc := range resolved.Names() {
		if cn := resolved.Services[svc].ContainerName; cn != "" {
			return nil, fmt.Errorf("preview of pull request #%d: service %s sets container_name %q, which would collide with production (a container name is unique on the machine); remove container_name from the compose file for previews to work", p.Number, svc, cn)
		}
		if resolved.Services[svc].NetworkMode == "host" {
			return nil, fmt.Errorf("preview of pull request #%d: service %s uses network_mode: host, so its ports would collide with production's; remove network_mode: host for previews to work", p.Number, svc)
		}
	}
	for _, r := range p.Routes {
		if _, ok := resolved.Services[r.Service]; !ok {
			return nil, fmt.Errorf("preview of pull request #%d: host %s is routed to service %s, which the compose file lacks", p.Number, r.Host, r.Service)
		}
	}
	if err := j.checkPreviewSharing(resolved); err != nil {
		return nil, err
	}
	// A service that builds and names its image would tag production's image with the
	// preview's build: the preview tags its own, as compose does for a service without image.
	images := map[string]string{}
	built := map[string]string{}
	for _, svc := range resolved.Names() {
		if sc := resolved.Services[svc]; sc.HasBuild() && sc.Image != "" {
			images[svc] = name + "-" + svc
			if _, ok := built[imageRef(sc.Image)]; !ok {
				built[imageRef(sc.Image)] = images[svc]
			}
			j.say("preview #%d builds service %s as image %s, not %s", p.Number, svc, images[svc], sc.Image)
		}
	}
	// A service that runs, without building, an image another service builds runs the
	// preview's build of it, not production's.
	for _, svc := range resolved.Names() {
		sc := resolved.Services[svc]
		if img, ok := built[imageRef(sc.Image)]; ok && !sc.HasBuild() {
			images[svc] = img
			j.say("preview #%d runs service %s on its own build %s, not %s", p.Number, svc, img, sc.Image)
		}
	}
	return renderPreviewOverride(resolved.Names(), images)
}

// checkPreviewSharing refuses what would let a preview reach production's data (external
// volumes and networks, another container's network or volumes, writable host paths)
// unless stagely.yaml's preview.shared lists it. A read-only bind of a host path and a bind
// inside the project's own directory need no opt-in: neither can change production's data.
func (j *jobRun) checkPreviewSharing(resolved *compose.Config) error {
	p := j.job.Preview
	name := j.job.Project.ComposeProject
	shared := map[string]bool{}
	for _, s := range p.Shared {
		shared[s] = true
	}
	refuse := func(what, res string) error {
		return fmt.Errorf("preview of pull request #%d: %s, so the preview would share %s with production (a pull request could change production's data); list %q under preview.shared in stagely.yaml if sharing is intended, or change the compose file for previews", p.Number, what, res, res)
	}
	for _, kind := range []struct {
		what string
		set  map[string]compose.Resource
	}{{"network", resolved.Networks}, {"volume", resolved.Volumes}} {
		keys := make([]string, 0, len(kind.set))
		for k := range kind.set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r := kind.set[k]
			switch {
			case r.External && !shared[r.Name] && !shared[k]:
				return refuse(fmt.Sprintf("%s %s is external (%q)", kind.what, k, r.Name), r.Name)
			case r.External:
				j.say("preview #%d shares the external %s %s, as preview.shared allows", p.Number, kind.what, r.Name)
			case r.Name != "" && !strings.HasPrefix(r.Name, name+"_") && !strings.HasPrefix(r.Name, name+"-"):
				return fmt.Errorf("preview of pull request #%d: %s %s is named %q in the compose file, so the preview would share it with production; remove its name: (or mark it external: true and list it under preview.shared if sharing is intended) for previews to work", p.Number, kind.what, k, r.Name)
			}
		}
	}
	own := filepath.Clean(j.dirs.root) + string(filepath.Separator)
	for _, svc := range resolved.Names() {
		sc := resolved.Services[svc]
		if c, ok := strings.CutPrefix(sc.NetworkMode, "container:"); ok && !shared[c] {
			return refuse(fmt.Sprintf("service %s uses network_mode: container:%s, a container outside the preview", svc, c), c)
		}
		for _, from := range sc.VolumesFrom {
			if c, ok := strings.CutPrefix(from, "container:"); ok && !shared[c] {
				return refuse(fmt.Sprintf("service %s uses volumes_from: container:%s, a container outside the preview", svc, c), c)
			}
		}
		for _, v := range sc.Volumes {
			if v.Type != "bind" || v.ReadOnly || shared[v.Source] || strings.HasPrefix(filepath.Clean(v.Source)+string(filepath.Separator), own) {
				continue
			}
			return refuse(fmt.Sprintf("service %s binds the host path %s writable (add :ro to bind it read-only)", svc, v.Source), v.Source)
		}
	}
	return nil
}

// imageRef is an image reference with the tag Docker assumes when it has none.
func imageRef(ref string) string {
	if ref == "" || strings.Contains(ref, "@") || strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		return ref
	}
	return ref + ":latest"
}

// renderPreviewOverride is the override that removes every service's host port bindings
// and sets the image name of the services in images.
func renderPreviewOverride(services []string, images map[string]string) ([]byte, error) {
	str := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
	}
	body := &yaml.Node{Kind: yaml.MappingNode}
	for _, svc := range services {
		m := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ports"},
			{Kind: yaml.SequenceNode, Tag: "!reset", Style: yaml.FlowStyle},
		}}
		if img, ok := images[svc]; ok {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "image"}, str(img))
		}
		body.Content = append(body.Content, str(svc), m)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "services"}, body,
	}}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render the preview override: %w", err)
	}
	return out, nil
}

// previewFiles adds the preview's override to files; files as they are for any other job.
func (j *jobRun) previewFiles(resolved *compose.Config, files []string) ([]string, error) {
	content, err := j.isolatePreview(resolved)
	if err != nil || content == nil {
		return files, err
	}
	f, err := writeOverride(j.dirs.run(), content)
	if err != nil {
		return nil, err
	}
	j.overrides = append(j.overrides, f)
	return append(files, f), nil
}

func validatePreview(job protocol.Deploy) error {
	p := job.Preview
	switch {
	case job.JobID == "":
		return errors.New("the job has no id")
	case !projectNameRE.MatchString(job.Project.ComposeProject):
		return fmt.Errorf("the compose project name %q is not valid (lowercase letters, digits, - and _)", job.Project.ComposeProject)
	case p.Number <= 0:
		return fmt.Errorf("the pull request number %d is not valid", p.Number)
	}
	hosts := map[string]bool{}
	for _, r := range p.Routes {
		switch {
		case !hostRE.MatchString(r.Host) || len(r.Host) > 253:
			return fmt.Errorf("the preview host name %q is not valid", r.Host)
		case hosts[r.Host]:
			return fmt.Errorf("the preview host name %q is routed twice", r.Host)
		case r.Service == "":
			return fmt.Errorf("the route of %s names no service", r.Host)
		case r.Port < 1 || r.Port > 65535:
			return fmt.Errorf("the route of %s has port %d, not 1-65535", r.Host, r.Port)
		}
		hosts[r.Host] = true
	}
	return nil
}
