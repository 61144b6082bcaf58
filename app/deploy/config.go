package deploy

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

type loadedConfig struct {
	cfg         stagelyyaml.Config
	composePath string
	compose     map[string]stagelyyaml.ComposeService
	job         protocol.JobConfig
}

// repoFiles reads files of one commit through GitHub, once each; a missing file is nil.
type repoFiles struct {
	gh    GitHub
	repo  string
	sha   string
	files map[string][]byte
}

func (r *repoFiles) read(ctx context.Context, path string) ([]byte, bool, error) {
	if b, ok := r.files[path]; ok {
		return b, b != nil, nil
	}
	b, err := r.gh.ReadFile(ctx, r.repo, path, r.sha)
	if errors.Is(err, github.ErrNotFound) {
		r.files[path] = nil
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s at %s: %w", path, short(r.sha), err)
	}
	r.files[path] = b
	return b, true, nil
}

// loadConfig reads the project's stagely.yaml and compose file at sha through GitHub (the
// control plane never clones the repository) and validates them together. Both are read
// from the project's root directory (p.RootDirectory, "" for the repository root), and every
// path in the result and in the problems is relative to the repository root.
func loadConfig(ctx context.Context, gh GitHub, p store.Project, sha string) (loadedConfig, []stagelyyaml.Problem, error) {
	files := &repoFiles{gh: gh, repo: p.RepoFullName, sha: sha, files: map[string][]byte{}}
	root := p.RootDirectory
	raw, _, err := files.read(ctx, path.Join(root, stagelyyaml.FileName))
	if err != nil {
		return loadedConfig{}, nil, err
	}
	cfg, problems := stagelyyaml.Parse(raw)
	rel, err := stagelyyaml.ResolveComposeFile(cfg, func(name string) (bool, error) {
		_, ok, err := files.read(ctx, path.Join(root, name))
		return ok, err
	})
	var verr *stagelyyaml.ValidationError
	if errors.As(err, &verr) {
		return loadedConfig{}, inRoot(root, append(problems, verr.Problems...)), nil
	}
	if err != nil {
		return loadedConfig{}, inRoot(root, problems), err
	}
	composePath := path.Join(root, rel)
	composeData, _, err := files.read(ctx, composePath)
	if err != nil {
		return loadedConfig{}, inRoot(root, problems), err
	}
	services, err := stagelyyaml.ParseComposeServices(composePath, composeData)
	if errors.As(err, &verr) {
		return loadedConfig{}, inRoot(root, append(problems, verr.Problems...)), nil
	}
	if err != nil {
		return loadedConfig{}, inRoot(root, problems), err
	}
	problems = append(problems, stagelyyaml.Validate(cfg, services, composePath, p.PublicID)...)
	return loadedConfig{cfg: cfg, composePath: composePath, compose: services, job: jobConfig(cfg, composePath)}, inRoot(root, problems), nil
}

// inRoot places the problems stagelyyaml reports in stagely.yaml at the project's copy of
// it, so annotations land on the file in the root directory.
func inRoot(root string, problems []stagelyyaml.Problem) []stagelyyaml.Problem {
	if root == "" {
		return problems
	}
	for i := range problems {
		if problems[i].Path == stagelyyaml.FileName {
			problems[i].Path = path.Join(root, stagelyyaml.FileName)
		}
	}
	return problems
}

// jobConfig turns the parsed stagely.yaml into what the agent needs. composePath is relative
// to the repository root, as the agent takes it (it extracts the whole repository), so a
// project in a root directory needs nothing more of the agent.
func jobConfig(cfg stagelyyaml.Config, composePath string) protocol.JobConfig {
	jc := protocol.JobConfig{
		ComposeFile: composePath,
		Strategy:    string(cfg.Deployment.Strategy),
		Timeout:     protocol.Duration(cfg.Deployment.Timeout),
	}
	for _, h := range cfg.Hooks.PreDeploy {
		jc.Hooks.PreDeploy = append(jc.Hooks.PreDeploy, protocol.Hook{Service: h.Service, Command: h.Command, ContinueOnError: h.ContinueOnError})
	}
	for _, h := range cfg.Hooks.PostDeploy {
		jc.Hooks.PostDeploy = append(jc.Hooks.PostDeploy, protocol.Hook{Service: h.Service, Command: h.Command, ContinueOnError: h.ContinueOnError})
	}
	if len(cfg.Services) > 0 {
		jc.Services = map[string]protocol.ServiceConfig{}
		for name, s := range cfg.Services {
			jc.Services[name] = protocol.ServiceConfig{HealthCheckGracePeriod: protocol.Duration(s.HealthCheckGracePeriod), Ignore: s.Ignore}
		}
	}
	return jc
}
