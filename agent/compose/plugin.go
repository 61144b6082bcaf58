package compose

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pluginName is the compose CLI plugin's file name in a plugin folder.
const pluginName = "docker-compose"

// pluginEnvVar tells a plugin binary that the docker CLI started it (and so that its first
// argument is "compose"). A compose plugin run directly must not see it, or it would parse
// its arguments as the docker CLI's.
const pluginEnvVar = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"

// systemPluginDirs returns the docker CLI's own plugin folders on Linux, in its order.
func systemPluginDirs() []string {
	return []string{
		"/usr/local/lib/docker/cli-plugins",
		"/usr/local/libexec/docker/cli-plugins",
		"/usr/lib/docker/cli-plugins",
		"/usr/libexec/docker/cli-plugins",
	}
}

// findPlugin returns the compose plugin binary `docker compose` would run: the first
// docker-compose file in the config file's cliPluginsExtraDirs, <config dir>/cli-plugins,
// then systemDirs, as the docker CLI searches them. It returns "" when there is none or
// the one found does not answer the plugin metadata call, so the caller falls back to
// `docker compose`.
func findPlugin(ctx context.Context, env []string, systemDirs []string) string {
	configDir := getenv(env, "DOCKER_CONFIG")
	if configDir == "" {
		home := getenv(env, "HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		if home == "" {
			return ""
		}
		configDir = filepath.Join(home, ".docker")
	}
	dirs := extraPluginDirs(filepath.Join(configDir, "config.json"))
	dirs = append(dirs, filepath.Join(configDir, "cli-plugins"))
	dirs = append(dirs, systemDirs...)
	for _, dir := range dirs {
		path := filepath.Join(dir, pluginName)
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		// The docker CLI takes the first candidate by name and fails when it is broken;
		// only a candidate that works is worth running directly.
		if !isPlugin(ctx, path, env) {
			return ""
		}
		return path
	}
	return ""
}

// extraPluginDirs reads cliPluginsExtraDirs from the docker CLI's config file.
func extraPluginDirs(configFile string) []string {
	b, err := os.ReadFile(configFile)
	if err != nil {
		return nil
	}
	var cfg struct {
		CLIPluginsExtraDirs []string `json:"cliPluginsExtraDirs"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return nil
	}
	return cfg.CLIPluginsExtraDirs
}

// isPlugin asks path for its CLI plugin metadata, the way the docker CLI checks a plugin.
func isPlugin(ctx context.Context, path string, env []string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "docker-cli-plugin-metadata")
	cmd.Env = pluginEnv(env)
	out, err := cmd.Output()
	if err != nil {
		return false
	}
	var meta struct {
		SchemaVersion string `json:"SchemaVersion"`
	}
	return json.Unmarshal(out, &meta) == nil && meta.SchemaVersion != ""
}

// pluginEnv is env (the agent's own when nil) without pluginEnvVar.
func pluginEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, pluginEnvVar+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// getenv looks key up in env, or in the agent's own environment when env is nil.
func getenv(env []string, key string) string {
	if env == nil {
		return os.Getenv(key)
	}
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
