package stagelyyaml

import "time"

// Version is the only stagely.yaml schema version; a file without `version` gets it.
const Version = "1.0"

// Strategy says how new containers replace running ones.
type Strategy string

const (
	// StrategyRecreate starts the new containers as compose does by default (the default).
	StrategyRecreate Strategy = "recreate"
	// StrategyStopFirst stops the old containers before starting the new ones.
	StrategyStopFirst Strategy = "stop-first"
)

// Limits and defaults of stagely.yaml, documented in docs/stagely-yaml.md.
const (
	DefaultTimeout = 300 * time.Second
	MinTimeout     = time.Second
	MaxTimeout     = time.Hour
	// MaxGracePeriod caps health_check_grace_period; no wait can outlast the deployment anyway.
	MaxGracePeriod = time.Hour
	// MaxFileSize bounds the stagely.yaml we read; GitHub's contents API serves files up to 1 MB.
	MaxFileSize = 256 << 10
)

// Config is a parsed stagely.yaml with defaults applied.
type Config struct {
	Version string
	// ProjectID, when set, must name the project the repository is linked to.
	ProjectID    string
	ProjectIDPos Pos
	// ComposeFile is a cleaned path relative to the project's root directory, the folder of
	// stagely.yaml ("deploy/compose.yml"); empty means "discover it" (see ResolveComposeFile).
	ComposeFile    string
	ComposeFilePos Pos
	// WatchPaths are gitignore-style patterns, relative to the repository root, that widen
	// the files whose change deploys the project beyond its root directory (see Watch).
	WatchPaths []string
	Deployment Deployment
	Hooks      Hooks
	// Services holds per-service settings keyed by compose service name.
	Services    map[string]ServiceConfig
	ServicesPos Pos
	// Preview is what pull request previews get (docs/previews.md).
	Preview Preview
}

// Deployment bounds and shapes the whole deploy operation.
type Deployment struct {
	Timeout    time.Duration
	TimeoutPos Pos
	Strategy   Strategy
}

// Hooks are commands run inside service containers around the swap.
type Hooks struct {
	PreDeploy  []Hook
	PostDeploy []Hook
}

// Hook is one command run with `docker compose run --rm <service> sh -c <command>`.
type Hook struct {
	Service         string
	Command         string
	ContinueOnError bool
	// Pos is where the hook's list item starts; ServicePos is its `service` value.
	Pos
	ServicePos Pos
}

// ServiceConfig is the stagely.yaml settings of one compose service.
type ServiceConfig struct {
	// HealthCheckGracePeriod is how long the agent waits for the service to become healthy;
	// 0 means the agent's default.
	HealthCheckGracePeriod time.Duration
	GracePeriodPos         Pos
	// Ignore leaves the service alone during updates.
	Ignore bool
	// Pos is where the service's name appears under `services:`.
	Pos
}

// Default is the configuration of a repository without stagely.yaml.
func Default() Config {
	return Config{
		Version:    Version,
		Deployment: Deployment{Timeout: DefaultTimeout, Strategy: StrategyRecreate},
		Services:   map[string]ServiceConfig{},
	}
}
