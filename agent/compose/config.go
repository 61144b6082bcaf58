package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Config is the part of the resolved project (`docker compose config --format json`) a deploy needs.
type Config struct {
	Services map[string]ServiceConfig `json:"services"`
	// Networks and Volumes are the top-level ones, with the names compose resolved.
	Networks map[string]Resource `json:"networks,omitempty"`
	Volumes  map[string]Resource `json:"volumes,omitempty"`
	// Digest is the SHA-256 of the whole resolved project as compose printed it: equal
	// digests mean compose reads the same project.
	Digest string `json:"-"`
}

// Resource is a top-level network or volume.
type Resource struct {
	// Name is the engine's name: <project>_<key> unless the file sets one.
	Name     string `json:"name"`
	External bool   `json:"external,omitempty"`
}

// ServiceConfig is one resolved service.
type ServiceConfig struct {
	Image       string          `json:"image"`
	PullPolicy  string          `json:"pull_policy,omitempty"`
	Build       json.RawMessage `json:"build,omitempty"`
	HealthCheck *HealthCheck    `json:"healthcheck,omitempty"`
	// Environment is the resolved environment, env_file entries included; a variable
	// without a value is nil.
	Environment map[string]*string `json:"environment,omitempty"`
	Scale       *int               `json:"scale,omitempty"`
	Deploy      *struct {
		Replicas *int `json:"replicas,omitempty"`
	} `json:"deploy,omitempty"`
	DependsOn map[string]DependsOn `json:"depends_on,omitempty"`
	// ContainerName is the fixed container name the file sets, if any.
	ContainerName string `json:"container_name,omitempty"`
	// NetworkMode is network_mode as the file sets it, like "host".
	NetworkMode string `json:"network_mode,omitempty"`
	// VolumesFrom is volumes_from as the file sets it, like "container:db" or "db".
	VolumesFrom []string `json:"volumes_from,omitempty"`
	// Volumes are the service's mounts, in compose's long form.
	Volumes []ServiceVolume `json:"volumes,omitempty"`
}

// ServiceVolume is one mount of a service; a bind's Source is an absolute host path.
type ServiceVolume struct {
	Type     string `json:"type"`
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// DependsOn is one entry of a service's depends_on.
type DependsOn struct {
	// Condition is service_started, service_healthy or service_completed_successfully.
	Condition string `json:"condition"`
	Required  *bool  `json:"required,omitempty"`
	// Restart is whether compose restarts the dependent service when it recreates this one.
	Restart bool `json:"restart,omitempty"`
}

// Replicas is how many containers compose runs for the service: scale, else
// deploy.replicas, else 1, as compose's own GetScale.
func (s ServiceConfig) Replicas() int {
	switch {
	case s.Scale != nil:
		return *s.Scale
	case s.Deploy != nil && s.Deploy.Replicas != nil:
		return *s.Deploy.Replicas
	}
	return 1
}

// HealthCheck is a service's resolved health check.
type HealthCheck struct {
	Test    []string `json:"test"`
	Disable bool     `json:"disable"`
}

// HasBuild reports whether compose builds the service's image.
func (s ServiceConfig) HasBuild() bool { return len(s.Build) > 0 && string(s.Build) != "null" }

// HasHealthCheck reports whether the service defines an enabled health check.
func (s ServiceConfig) HasHealthCheck() bool {
	h := s.HealthCheck
	if h == nil || h.Disable {
		return false
	}
	return len(h.Test) > 0 && h.Test[0] != "NONE"
}

// Names returns the service names, sorted.
func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseConfig reads `docker compose config --format json` output.
func ParseConfig(out []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(out, &c); err != nil {
		return nil, fmt.Errorf("parse compose config: %w", err)
	}
	sum := sha256.Sum256(out)
	c.Digest = hex.EncodeToString(sum[:])
	return &c, nil
}

// Config resolves the project the way compose itself will run it (interpolation,
// merging of every -f file, profiles), streaming compose's warnings to onLine.
func (r *Runner) Config(ctx context.Context, p Project, onLine LineFunc) (*Config, error) {
	out, err := r.Output(ctx, p, "config", []string{"--format", "json"}, stderrOnly(onLine))
	if err != nil {
		return nil, err
	}
	return ParseConfig(out)
}

// Hashes returns compose's configuration hash of every service of p
// (`config --hash '*'`): the value compose writes into a container's
// com.docker.compose.config-hash label and compares with it to decide a recreate.
func (r *Runner) Hashes(ctx context.Context, p Project, onLine LineFunc) (map[string]string, error) {
	out, err := r.Output(ctx, p, "config", []string{"--hash", "*"}, stderrOnly(onLine))
	if err != nil {
		return nil, err
	}
	hashes := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		name, hash, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		hashes[name] = hash
	}
	return hashes, nil
}

// stderrOnly forwards stderr lines only: config's stdout is the resolved project, which
// would carry every secret of the override.
func stderrOnly(onLine LineFunc) LineFunc {
	if onLine == nil {
		return nil
	}
	return func(stream, line string) {
		if stream == StreamStderr {
			onLine(stream, line)
		}
	}
}
