package samplerepo_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/app/stagelyyaml"
)

// parse reads the repository the way the server's validation does and fails on any problem.
func parse(t *testing.T, files map[string][]byte) (stagelyyaml.Config, map[string]stagelyyaml.ComposeService) {
	t.Helper()
	services, err := stagelyyaml.ParseComposeServices("compose.yaml", files["compose.yaml"])
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	cfg, problems := stagelyyaml.Parse(files["stagely.yaml"])
	problems = append(problems, stagelyyaml.Validate(cfg, services, "compose.yaml", "")...)
	if len(problems) > 0 {
		t.Fatalf("stagely.yaml has problems: %+v\n%s", problems, files["stagely.yaml"])
	}
	return cfg, services
}

func TestFiles_ValidRepositoryWithAHealthCheckedWebAndAWorker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		repo      samplerepo.Repo
		hook      string
		grace     time.Duration
		probePort string
	}{
		{"defaults", samplerepo.Repo{Image: "busybox:test", Port: 18080, Page: "v1\n"}, samplerepo.DefaultHook, 20 * time.Second, "http://127.0.0.1:8080/"},
		{
			"hook, grace and a broken health check set",
			samplerepo.Repo{Image: "busybox:test", Port: 18080, Page: "v2\n", Hook: "echo a; sleep 1; echo b", Grace: "6s", HealthPort: 9999},
			"echo a; sleep 1; echo b", 6 * time.Second, "http://127.0.0.1:9999/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := tt.repo.Files()
			cfg, services := parse(t, files)
			if len(cfg.Hooks.PreDeploy) != 1 || cfg.Hooks.PreDeploy[0].Service != "web" || cfg.Hooks.PreDeploy[0].Command != tt.hook {
				t.Errorf("pre_deploy hooks = %+v, want %q in web", cfg.Hooks.PreDeploy, tt.hook)
			}
			if got := cfg.Services["web"].HealthCheckGracePeriod; got != tt.grace {
				t.Errorf("web's grace period = %v, want %v", got, tt.grace)
			}
			if web := services["web"]; !web.Build || !web.Healthcheck {
				t.Errorf("web = %+v, want built from the repository with a health check", web)
			}
			if worker := services["worker"]; worker.Image != tt.repo.Image {
				t.Errorf("worker = %+v, want image %s", worker, tt.repo.Image)
			}
			compose := string(files["compose.yaml"])
			for _, want := range []string{`ports: ["127.0.0.1:18080:8080"]`, tt.probePort} {
				if !strings.Contains(compose, want) {
					t.Errorf("compose.yaml lacks %s:\n%s", want, compose)
				}
			}
			if got := string(files["www/index.html"]); got != tt.repo.Page {
				t.Errorf("page = %q, want %q", got, tt.repo.Page)
			}
			if got := string(files["Dockerfile"]); got != "FROM busybox:test\nCOPY www /www\n" {
				t.Errorf("Dockerfile = %q", got)
			}
		})
	}
}

func TestFiles_StagelyYAMLReplacesTheGeneratedOne(t *testing.T) {
	t.Parallel()
	own := "version: \"1.0\"\ndeployment:\n  strategy: sideways\n"
	files := samplerepo.Repo{Image: "busybox:test", Port: 18080, StagelyYAML: own}.Files()
	if got := string(files["stagely.yaml"]); got != own {
		t.Fatalf("stagely.yaml = %q, want the caller's", got)
	}
}
