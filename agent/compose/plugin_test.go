package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The test binary answers the plugin metadata call in this mode (see TestMain in runner_test.go).
const pluginHelperEnv = "STAGELY_COMPOSE_TEST_HELPER=plugin"

func TestFindPlugin_FollowsTheDockerCLISearchOrder(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := func(t *testing.T, dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, pluginName)
		if err := os.Symlink(self, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write := func(t *testing.T, dir, content string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, pluginName)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		// setup lays out the config dir and a system dir and returns the path findPlugin must pick.
		setup func(t *testing.T, config, system string) string
	}{
		{
			name: "config dir before the system folders",
			setup: func(t *testing.T, config, system string) string {
				link(t, system)
				return link(t, filepath.Join(config, "cli-plugins"))
			},
		},
		{
			name: "cliPluginsExtraDirs before the config dir",
			setup: func(t *testing.T, config, system string) string {
				extra := filepath.Join(t.TempDir(), "extra")
				if err := os.WriteFile(filepath.Join(config, "config.json"), []byte(`{"cliPluginsExtraDirs": ["`+extra+`"]}`), 0o644); err != nil {
					t.Fatal(err)
				}
				link(t, filepath.Join(config, "cli-plugins"))
				return link(t, extra)
			},
		},
		{
			name: "a file that is not executable is passed over",
			setup: func(t *testing.T, config, system string) string {
				write(t, filepath.Join(config, "cli-plugins"), "#!/bin/sh\n", 0o644)
				return link(t, system)
			},
		},
		{
			name: "system folder when the config dir has none",
			setup: func(t *testing.T, config, system string) string {
				return link(t, system)
			},
		},
		{
			name: "none anywhere falls back to the docker CLI",
			setup: func(t *testing.T, config, system string) string {
				return ""
			},
		},
		{
			// `docker compose` would fail on it too; running docker is the honest fallback.
			name: "a first candidate that fails the metadata call falls back to the docker CLI",
			setup: func(t *testing.T, config, system string) string {
				write(t, filepath.Join(config, "cli-plugins"), "#!/bin/sh\nexit 1\n", 0o755)
				link(t, system)
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			config, system := t.TempDir(), t.TempDir()
			want := tt.setup(t, config, system)
			env := append(os.Environ(), "DOCKER_CONFIG="+config, pluginHelperEnv)
			if got := findPlugin(context.Background(), env, []string{system}); got != want {
				t.Errorf("findPlugin = %q, want %q", got, want)
			}
		})
	}
}

func TestFindPlugin_ConfigDirDefaultsToHomeDotDocker(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".docker", "cli-plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, pluginName)
	if err := os.Symlink(self, want); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, pluginHelperEnv}
	if got := findPlugin(context.Background(), env, nil); got != want {
		t.Errorf("findPlugin = %q, want %q", got, want)
	}
}
