package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// CheckPreview is the check run of a pull request's preview (docs/previews.md).
const CheckPreview = "Stagely / preview"

// errNoPreviewSlot says a preview waits: the project has as many previews on the agent as
// the deploy branch's stagely.yaml allows (preview.max_previews).
var errNoPreviewSlot = errors.New("no free preview slot on the agent")

// agentFeatures remembers what each connected agent said it supports in its HELLO. It is
// only ever consulted: an agent's HELLO on every connection sets it afresh.
type agentFeatures struct {
	mu   sync.Mutex
	seen map[int64][]string
}

func (a *agentFeatures) set(agentID int64, features []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[int64][]string{}
	}
	a.seen[agentID] = slices.Clone(features)
}

// has says whether the agent supports feature; known is false before its first HELLO.
func (a *agentFeatures) has(agentID int64, feature string) (has, known bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, known := a.seen[agentID]
	return slices.Contains(f, feature), known
}

// agentOf is the agent a queued deployment goes to (0 for none) and, for a preview's, the
// preview: production to the project's agent; a preview to the agent it runs on already, so
// a redeploy or teardown reaches the same host, else the project's preview agent, else its
// agent.
func (o *Orchestrator) agentOf(ctx context.Context, p store.Project, d store.Deployment) (int64, *store.Preview, error) {
	if !d.IsPreview() {
		return p.AgentID.Int64, nil, nil
	}
	pv, err := o.opt.Store.PreviewByNumber(ctx, p.ID, store.PreviewNumber(d.Environment))
	if err != nil {
		return 0, nil, fmt.Errorf("load the preview of deployment #%d: %w", d.ID, err)
	}
	switch {
	case pv.AgentID.Valid:
		return pv.AgentID.Int64, &pv, nil
	case p.PreviewAgentID.Valid:
		return p.PreviewAgentID.Int64, &pv, nil
	default:
		return p.AgentID.Int64, &pv, nil
	}
}

// cannotPreview says why the agent cannot run a preview ("" when it can); known is false
// while its HELLO has not been handled.
func (o *Orchestrator) cannotPreview(agentID int64) (why string, known bool) {
	has, known := o.features.has(agentID, protocol.FeaturePreviews)
	if !known || has {
		return "", known
	}
	name := fmt.Sprint(agentID)
	if a, err := o.opt.Store.AgentByID(context.Background(), agentID); err == nil {
		name = a.Name
	}
	return fmt.Sprintf("agent %s runs a stagely-agent without pull request previews: upgrade the agent (turn on auto-update in the dashboard, or reinstall it), then push to the pull request again", name), true
}

// slotLimits remembers the max_previews of each preview head whose stagely.yaml was read, so
// a preview waiting for a slot is offered one on each sweep without reading its stagely.yaml
// from GitHub every time (which would spend the installation's rate limit while it waits).
// Only ever consulted: a restarted server reads the file once more.
type slotLimits struct {
	mu     sync.Mutex
	limits map[int64]headLimit
}

type headLimit struct {
	sha   string
	limit int
}

func (s *slotLimits) remember(previewID int64, sha string, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits == nil {
		s.limits = map[int64]headLimit{}
	}
	s.limits[previewID] = headLimit{sha, limit}
}

func (s *slotLimits) of(previewID int64, sha string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limits[previewID]
	return l.limit, ok && l.sha == sha
}

// waitsForSlot says whether d, a preview's deploy whose limit is known already, must wait for
// a slot; a store error is logged and left to prepare, which claims the slot again.
func (o *Orchestrator) waitsForSlot(ctx context.Context, pv *store.Preview, d store.Deployment, agentID int64) bool {
	limit, known := o.slotLimits.of(pv.ID, d.SHA)
	if !known || d.Trigger == store.TriggerPreviewStop {
		return false
	}
	err := o.claimPreviewSlot(ctx, pv, agentID, limit)
	if err != nil && !errors.Is(err, errNoPreviewSlot) {
		o.log.Warn("offer a preview a slot", "deployment", d.ID, "err", err)
	}
	return errors.Is(err, errNoPreviewSlot)
}

// previewLimit is preview.max_previews as the deploy branch has it: the stagely.yaml of the
// project's latest successful production deployment, never the pull request's own, which
// could raise its limit. Until production has deployed, or when its stagely.yaml has no
// valid preview.max_previews, it is the default.
func (o *Orchestrator) previewLimit(ctx context.Context, gh GitHub, p store.Project) (int, error) {
	d, err := o.opt.Store.LastSuccessful(ctx, p.ID, store.EnvironmentProduction, 0)
	if store.IsNotFound(err) {
		return stagelyyaml.DefaultMaxPreviews, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load the latest production deployment of %s: %w", p.Name, err)
	}
	files := &repoFiles{gh: gh, repo: p.RepoFullName, sha: d.SHA, files: map[string][]byte{}}
	raw, ok, err := files.read(ctx, path.Join(p.RootDirectory, stagelyyaml.FileName))
	if err != nil || !ok {
		return stagelyyaml.DefaultMaxPreviews, err
	}
	cfg, _ := stagelyyaml.Parse(raw)
	if cfg.Preview.MaxPreviews < 1 {
		return stagelyyaml.DefaultMaxPreviews, nil
	}
	return cfg.Preview.MaxPreviews, nil
}

// admitPreview lets d, a deploy of to's preview, run on to's agent: its host names clash with
// no other preview's there (the problems say which), and it holds one of the slots the deploy
// branch allows, or errNoPreviewSlot.
func (o *Orchestrator) admitPreview(ctx context.Context, gh GitHub, p store.Project, d store.Deployment, to target, cfg stagelyyaml.Preview) ([]stagelyyaml.Problem, error) {
	pv := to.preview
	clashes, err := o.hostClashes(ctx, p, pv, to.agentID, previewRoutes(cfg, pv.PRNumber, p.Name))
	if err != nil || len(clashes) > 0 {
		return clashes, err
	}
	limit, err := o.previewLimit(ctx, gh, p)
	if err != nil {
		return nil, err
	}
	o.slotLimits.remember(pv.ID, d.SHA, limit)
	return nil, o.claimPreviewSlot(ctx, pv, to.agentID, limit)
}

// hostClashes are the problems of routes whose host name another of them, or a preview of
// another project on the same agent, has already: Caddy would send both to one service
// (names differing only in characters a host cannot hold, such as my_shop and my-shop).
func (o *Orchestrator) hostClashes(ctx context.Context, p store.Project, pv *store.Preview, agentID int64, routes []protocol.PreviewRoute) ([]stagelyyaml.Problem, error) {
	file := path.Join(p.RootDirectory, stagelyyaml.FileName)
	var problems []stagelyyaml.Problem
	clash := func(msg string) {
		problems = append(problems, stagelyyaml.Problem{Path: file, Level: stagelyyaml.LevelFailure, Message: msg})
	}
	seen := map[string]string{}
	for _, r := range routes {
		if other, ok := seen[r.Host]; ok {
			clash(fmt.Sprintf("preview.services %s and %s both get the host %s: rename one of them", other, r.Service, r.Host))
		}
		seen[r.Host] = r.Service
	}
	others, err := o.opt.Store.PreviewsOnAgent(ctx, agentID, pv.ID)
	if err != nil {
		return nil, err
	}
	for _, other := range others {
		for _, u := range other.URLMap() {
			host := strings.TrimPrefix(u, "https://")
			if service, ok := seen[host]; ok {
				clash(fmt.Sprintf("preview.services %s gets the host %s, which the preview of pull request #%d of another project on this agent has already: rename the service, or the project", service, host, other.PRNumber))
			}
		}
	}
	return problems, nil
}

// claimPreviewSlot moves the preview to deploying on agentID, or says errNoPreviewSlot and
// leaves it queued. A stop needs no slot.
func (o *Orchestrator) claimPreviewSlot(ctx context.Context, pv *store.Preview, agentID int64, limit int) error {
	ok, err := o.opt.Store.ClaimPreviewSlot(ctx, pv.ID, agentID, limit)
	if err != nil {
		return fmt.Errorf("claim a preview slot for pull request #%d: %w", pv.PRNumber, err)
	}
	if !ok {
		return errNoPreviewSlot
	}
	return nil
}

// openSecrets opens the secrets a job gets: the production set for production, the preview
// set (with the production secrets shared with previews) for a preview.
func (o *Orchestrator) openSecrets(ctx context.Context, p store.Project, pv *store.Preview) ([]protocol.Secret, error) {
	if pv != nil {
		s, err := o.opt.Secrets.ForPreview(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("open the project's preview secrets: %w", err)
		}
		return s, nil
	}
	s, err := o.opt.Secrets.ForDeploy(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("open the project's secrets: %w", err)
	}
	return s, nil
}

// previewComposeProject is the compose project of pull request number's preview: the
// project's own name with -pr-<n>, so it never shares containers, networks or volumes
// with production or another preview.
func previewComposeProject(p store.Project, number int) string {
	return fmt.Sprintf("%s-pr-%d", p.ComposeProject, number)
}

// previewStopJob is the teardown of d's preview: the agent needs only its compose project.
func previewStopJob(p store.Project, d store.Deployment) protocol.Deploy {
	n := store.PreviewNumber(d.Environment)
	return protocol.Deploy{
		JobID:   jobID(d.ID),
		Project: protocol.Project{ID: p.PublicID, Name: p.Name, ComposeProject: previewComposeProject(p, n)},
		Repo:    p.RepoFullName,
		Ref:     d.Ref,
		SHA:     d.SHA,
		Preview: &protocol.Preview{Number: n, Stop: true},
	}
}

// previewRoutes are the host names of the services stagely.yaml gives a URL, by name.
func previewRoutes(cfg stagelyyaml.Preview, number int, project string) []protocol.PreviewRoute {
	var routes []protocol.PreviewRoute
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		routes = append(routes, protocol.PreviewRoute{
			Host: stagelyyaml.PreviewHost(name, number, project, cfg.Domain), Service: name, Port: cfg.Services[name].Port,
		})
	}
	return routes
}

// previewURLs are the public URLs of routes, by service.
func previewURLs(routes []protocol.PreviewRoute) map[string]string {
	urls := map[string]string{}
	for _, r := range routes {
		urls[r.Service] = "https://" + r.Host
	}
	return urls
}
