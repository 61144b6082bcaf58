package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// Kick starts the oldest queued deployment of each of the project's environments (its
// production and its pull requests' previews) in which nothing is running, if its agent is
// online and idle. It is safe to call at any time and from anywhere: the database decides
// which caller, if any, gets to dispatch.
func (o *Orchestrator) Kick(ctx context.Context, projectID int64) {
	envs, err := o.opt.Store.QueuedEnvironments(ctx, projectID)
	if err != nil {
		o.log.Error("start deployment", "project", projectID, "err", err)
		return
	}
	for _, env := range envs {
		// Each pass either dispatches one deployment, or finishes one that cannot run (and then
		// looks at the next), or stops.
		for {
			again, err := o.kickOnce(ctx, projectID, env)
			if err != nil {
				o.log.Error("start deployment", "project", projectID, "environment", env, "err", err)
				break
			}
			if !again {
				break
			}
		}
	}
}

func (o *Orchestrator) kickOnce(ctx context.Context, projectID int64, env string) (bool, error) {
	st := o.opt.Store
	d, err := st.OldestQueued(ctx, projectID, env)
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p, err := st.ProjectByID(ctx, projectID)
	if err != nil {
		return false, err
	}
	agentID, pv, err := o.agentOf(ctx, p, d)
	if err != nil {
		return false, err
	}
	if agentID == 0 {
		return o.failQueued(ctx, p, d, "no agent is linked to project "+p.Name+": link one in the Stagely dashboard, then press Re-run")
	}
	in, err := st.InstallationByID(ctx, p.InstallationID)
	if err != nil {
		return false, err
	}
	if !in.Active() {
		return o.failQueued(ctx, p, d, "the Stagely GitHub App is suspended or uninstalled on "+in.AccountLogin)
	}
	// Checked before anything of the repository is read or handed out.
	if denied, err := o.ownerAccess(ctx, o.opt.GitHub(in.GitHubID), p); err != nil || denied != "" {
		if err != nil {
			return false, err
		}
		return o.failQueued(ctx, p, d, denied)
	}
	if !o.opt.Hub.Idle(agentID) {
		// It waits: for the agent to connect (the sweeper fails it if the agent stays away
		// too long) or to finish its current job (its result kicks the agent's projects).
		return false, nil
	}
	if pv != nil {
		why, known := o.cannotPreview(agentID)
		switch {
		case !known:
			return false, nil // its HELLO is being handled: AgentConnected kicks it
		case why != "":
			return o.failQueued(ctx, p, d, why)
		case o.waitsForSlot(ctx, pv, d, agentID):
			return false, nil
		}
	}
	// Everything that can fail is done while the row still says queued: a failure, or this
	// server stopping half-way, then leaves nothing to undo.
	gh := o.opt.GitHub(in.GitHubID)
	job, problems, err := o.prepare(ctx, gh, p, d, target{agentID: agentID, preview: pv})
	if err != nil && ctx.Err() != nil {
		// Cancelled (the server stopping, say): the deployment stays queued for the next kick.
		return false, err
	}
	if errors.Is(err, errNoPreviewSlot) {
		return false, nil // it waits for a preview of the project on this agent to stop
	}
	if err != nil || stagelyyaml.HasFailure(problems) {
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = problemSummary(problems)
		}
		return o.failQueued(ctx, p, d, msg, problems...)
	}
	return false, o.dispatch(ctx, p, d, agentID, job, problems)
}

// dispatch records d as dispatched to agentID, with the config it runs with, and hands the
// agent its job; a deployment another caller took meanwhile is left to that caller.
func (o *Orchestrator) dispatch(ctx context.Context, p store.Project, d store.Deployment, agentID int64, job protocol.Deploy, problems []stagelyyaml.Problem) error {
	st := o.opt.Store
	cfg, err := json.Marshal(job.Config)
	if err != nil {
		return fmt.Errorf("encode the config of deployment #%d: %w", d.ID, err)
	}
	if job.Previous == nil {
		job.Config = createIgnored(job.Config)
	}
	err = st.MarkDispatched(ctx, d.ID, agentID, o.opt.Now())
	if errors.Is(err, store.ErrConflict) || store.IsNotFound(err) {
		// Another deployment of this environment is active, or another caller took this one.
		return nil
	}
	if err != nil {
		return err
	}
	if err := st.SetDeploymentConfig(ctx, d.ID, cfg); err != nil {
		return o.requeue(ctx, d.ID, err)
	}
	o.reportProgress(ctx, stageStarted, p, &d, problems)
	if err := o.opt.Hub.Dispatch(ctx, agentID, job); err != nil {
		o.log.Warn("hand deployment to agent; it waits for the agent", "deployment", d.ID, "agent", agentID, "err", err)
		return o.requeue(ctx, d.ID, nil)
	}
	o.log.Info("deployment dispatched", "deployment", d.ID, "project", p.Name, "environment", d.Environment, "sha", d.SHA, "agent", agentID)
	return nil
}

// fallbackTimeout bounds a fallback's store writes.
const fallbackTimeout = 30 * time.Second

// fallback is the context of a step that undoes or settles what a failed step left: it
// runs even when the failure was the caller's context ending, so it never shares its fate.
func fallback(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), fallbackTimeout)
}

// requeue puts a deployment marked dispatched back in the queue after handing it to the
// agent failed; cause, when set, is the error to return along.
func (o *Orchestrator) requeue(ctx context.Context, id int64, cause error) error {
	fctx, cancel := fallback(ctx)
	defer cancel()
	if err := o.opt.Store.Requeue(fctx, id); err != nil && !store.IsNotFound(err) {
		return errors.Join(cause, fmt.Errorf("requeue deployment #%d: %w", id, err))
	}
	return cause
}

// failQueued finishes a queued deployment that cannot run, with the configuration's
// problems if that is why, and asks for the next pass.
func (o *Orchestrator) failQueued(ctx context.Context, p store.Project, d store.Deployment, msg string, problems ...stagelyyaml.Problem) (bool, error) {
	fctx, cancel := fallback(ctx)
	defer cancel()
	if err := o.finish(fctx, p, d.ID, store.DeploymentFailure, msg, nil, problems); err != nil {
		return false, err
	}
	return true, nil
}

// target is where a deployment goes: its agent and, for a preview's, the preview.
type target struct {
	agentID int64
	preview *store.Preview
}

// prepare reads stagely.yaml and the compose file at the SHA, validates them, opens the
// project's secrets and mints the agent's read-only token. Problems are the user's to fix;
// an error is ours or GitHub's.
func (o *Orchestrator) prepare(ctx context.Context, gh GitHub, p store.Project, d store.Deployment, to target) (protocol.Deploy, []stagelyyaml.Problem, error) {
	pv := to.preview
	if d.Trigger == store.TriggerPreviewStop {
		return previewStopJob(p, d), nil, nil
	}
	lc, problems, err := loadConfig(ctx, gh, p, d.SHA)
	if pv != nil && err == nil && !stagelyyaml.HasFailure(problems) {
		problems = append(problems, inRoot(p.RootDirectory, stagelyyaml.ValidatePreview(lc.cfg, lc.compose, lc.composePath))...)
	}
	if err != nil || stagelyyaml.HasFailure(problems) {
		return protocol.Deploy{}, problems, err
	}
	if pv != nil {
		if clashes, err := o.admitPreview(ctx, gh, p, d, to, lc.cfg.Preview); err != nil || len(clashes) > 0 {
			return protocol.Deploy{}, clashes, err
		}
	}
	secrets, err := o.openSecrets(ctx, p, pv)
	if err != nil {
		return protocol.Deploy{}, nil, err
	}
	tok, err := gh.RepoReadToken(ctx, p.RepoID)
	if err != nil {
		return protocol.Deploy{}, nil, fmt.Errorf("get a read-only token for %s from GitHub: %w", p.RepoFullName, err)
	}
	job := protocol.Deploy{
		JobID:   jobID(d.ID),
		Project: protocol.Project{ID: p.PublicID, Name: p.Name, ComposeProject: p.ComposeProject},
		Repo:    p.RepoFullName,
		Ref:     d.Ref,
		SHA:     d.SHA,
		Source:  protocol.Source{TarballURL: gh.TarballURL(p.RepoFullName, d.SHA), Token: tok.Value},
		Config:  lc.job,
		Secrets: secrets,
	}
	if pv != nil {
		job.Project.ComposeProject = previewComposeProject(p, pv.PRNumber)
		job.Preview = &protocol.Preview{Number: pv.PRNumber, Routes: previewRoutes(lc.cfg.Preview, pv.PRNumber, p.Name), Shared: lc.cfg.Preview.Shared}
		now := o.opt.Now()
		if err := o.opt.Store.SetPreviewDeployed(ctx, pv.ID, previewURLs(job.Preview.Routes), now, now.Add(lc.cfg.Preview.StopAfter)); err != nil {
			return protocol.Deploy{}, nil, err
		}
	}
	prev, err := o.opt.Store.LastSuccessful(ctx, p.ID, d.Environment, d.ID)
	switch {
	case store.IsNotFound(err):
	case err != nil:
		return protocol.Deploy{}, nil, err
	case len(prev.Config) > 0:
		var pc protocol.JobConfig
		if err := json.Unmarshal(prev.Config, &pc); err != nil {
			return protocol.Deploy{}, nil, fmt.Errorf("read the config of deployment #%d: %w", prev.ID, err)
		}
		job.Previous = &protocol.Previous{SHA: prev.SHA, Config: pc}
	}
	return job, problems, nil
}

// createIgnored is the config a project's first deploy sends: services with `ignore: true`
// are created and started like the others, once, as Kamal boots accessories on setup and
// leaves them alone on deploys. Left out, a database marked ignore would never exist and the
// services that need it would never come up. The deployment keeps the config as written, so
// the next deploy (whose previous config it is) leaves them alone.
func createIgnored(cfg protocol.JobConfig) protocol.JobConfig {
	if len(cfg.Services) == 0 {
		return cfg
	}
	services := make(map[string]protocol.ServiceConfig, len(cfg.Services))
	for name, sc := range cfg.Services {
		sc.Ignore = false
		services[name] = sc
	}
	cfg.Services = services
	return cfg
}

func problemSummary(problems []stagelyyaml.Problem) string {
	var lines []string
	for _, p := range problems {
		if p.Level == stagelyyaml.LevelFailure {
			lines = append(lines, p.String())
		}
	}
	return "configuration has problems: " + strings.Join(lines, "; ")
}

func annotations(problems []stagelyyaml.Problem) []github.Annotation {
	var out []github.Annotation
	for _, p := range problems {
		line := p.Line
		if line < 1 {
			line = 1
		}
		a := github.Annotation{Path: p.Path, StartLine: line, EndLine: line, Level: string(p.Level), Message: p.Message}
		if p.Column > 0 {
			a.StartColumn, a.EndColumn = p.Column, p.Column
		}
		out = append(out, a)
	}
	return out
}
