package deployer

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/protocol"
)

// serviceEnv returns, per service, the environment the secrets give it: global secrets
// reach every service, a service-scoped secret only its service, and a scoped secret wins
// over a global one of the same key. Secrets scoped to services not in services are
// reported in skipped.
func serviceEnv(secrets []protocol.Secret, services []string) (env map[string]map[string]string, skipped []string) {
	env = make(map[string]map[string]string, len(services))
	known := make(map[string]bool, len(services))
	for _, s := range services {
		env[s] = map[string]string{}
		known[s] = true
	}
	for _, s := range secrets {
		if s.Scope == protocol.ScopeGlobal || s.Scope == "" {
			for _, svc := range services {
				if _, set := env[svc][s.Key]; !set {
					env[svc][s.Key] = s.Value
				}
			}
		}
	}
	for _, s := range secrets {
		if s.Scope == protocol.ScopeGlobal || s.Scope == "" {
			continue
		}
		if !known[s.Scope] {
			skipped = append(skipped, fmt.Sprintf("%s (scope %s)", s.Key, s.Scope))
			continue
		}
		env[s.Scope][s.Key] = s.Value
	}
	return env, skipped
}

// withResolvedEnv puts under each service's secrets the environment compose resolved for
// it (env_file entries included; variables without a value are left to the compose file).
// Together with renderOverride's reset of env_file it makes `config --hash` see what `up`
// sees: `up` folds env_file into the environment before it hashes a service, `config
// --hash` does not (compose v2.40.3, cmd/compose/config.go runHash), so without this a
// service with an env_file would always look changed.
func withResolvedEnv(env map[string]map[string]string, resolved *compose.Config) {
	for svc, vars := range env {
		for k, v := range resolved.Services[svc].Environment {
			if _, set := vars[k]; !set && v != nil {
				vars[k] = *v
			}
		}
	}
}

// renderOverride writes the compose override that carries the secrets as each service's
// `environment:` map. Every value is double-quoted YAML, so newlines, quotes and unicode
// survive byte for byte, and every `$` is doubled, so compose does not interpolate it.
// With resetEnvFile, each service's env_file is reset (`!reset []`): its values are then
// in env (withResolvedEnv).
func renderOverride(env map[string]map[string]string, resetEnvFile bool) ([]byte, error) {
	str := func(v string, style yaml.Style) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: style}
	}
	services := &yaml.Node{Kind: yaml.MappingNode}
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, svc := range names {
		vars := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, len(env[svc]))
		for k := range env[svc] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vars.Content = append(vars.Content, str(k, yaml.DoubleQuotedStyle), str(strings.ReplaceAll(env[svc][k], "$", "$$"), yaml.DoubleQuotedStyle))
		}
		body := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("environment", 0), vars}}
		if resetEnvFile {
			body.Content = append(body.Content, str("env_file", 0), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!reset", Style: yaml.FlowStyle})
		}
		services.Content = append(services.Content, str(svc, yaml.DoubleQuotedStyle), body)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{
		Kind: yaml.MappingNode, Content: []*yaml.Node{str("services", 0), services},
	}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render override: %w", err)
	}
	return out, nil
}

// writeOverride writes the override into dir (a 0700 folder) as a 0600 file and returns
// its path; the caller removes it when the job ends.
func writeOverride(dir string, content []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("write override: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("write override: %w", err)
	}
	f, err := os.CreateTemp(dir, "override-*.yml") // CreateTemp makes the file 0600.
	if err != nil {
		return "", fmt.Errorf("write override: %w", err)
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write override: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write override: %w", err)
	}
	return f.Name(), nil
}
