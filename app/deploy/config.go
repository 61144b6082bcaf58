package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
)

type loadedConfig struct {
	cfg         stagelyyaml.Config
	composePath string
	job         protocol.JobConfig
}

// loadConfig reads stagely.yaml and the compose file at sha through GitHub (the control
// plane never clones the repository) and validates them together.
func loadConfig(ctx context.Context, gh GitHub, repo, sha, projectPublicID string) (loadedConfig, []stagelyyaml.Problem, error) {
	files := map[string][]byte{}
	read := func(path string) ([]byte, bool, error) {
		if b, ok := files[path]; ok {
			return b, b != nil, nil
		}
		b, err := gh.ReadFile(ctx, repo, path, sha)
		if errors.Is(err, github.ErrNotFound) {
			files[path] = nil
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s at %s: %w", path, short(sha), err)
		}
		files[path] = b
		return b, true, nil
	}

	raw, _, err := read(stagelyyaml.FileName)
	if err != nil {
		return loadedConfig{}, nil, err
	}
	cfg, problems := stagelyyaml.Parse(raw)
	composePath, err := stagelyyaml.ResolveComposeFile(cfg, func(path string) (bool, error) {
		_, ok, err := read(path)
		return ok, err
	})
	var verr *stagelyyaml.ValidationError
	if errors.As(err, &verr) {
		return loadedConfig{}, append(problems, verr.Problems...), nil
	}
	if err != nil {
		return loadedConfig{}, problems, err
	}
	composeData, _, err := read(composePath)
	if err != nil {
		return loadedConfig{}, problems, err
	}
	services, err := stagelyyaml.ParseComposeServices(composePath, composeData)
	if errors.As(err, &verr) {
		return loadedConfig{}, append(problems, verr.Problems...), nil
	}
	if err != nil {
		return loadedConfig{}, problems, err
	}
	problems = append(problems, stagelyyaml.Validate(cfg, services, composePath, projectPublicID)...)
	return loadedConfig{cfg: cfg, composePath: composePath, job: jobConfig(cfg, composePath)}, problems, nil
}

// jobConfig turns the parsed stagely.yaml into what the agent needs.
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
