package stagelyyaml_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/stagelyyaml"
)

// fuzzSeeds cover every branch of the schema; plain `go test` runs them as cases.
func fuzzSeeds() []string {
	return []string{
		"",
		"---\n",
		"version: \"1.0\"\nproject_id: p\ncompose_file: ./deploy/compose.yml\ndeployment:\n  timeout: 300s\n  strategy: stop-first\nhooks:\n  pre_deploy:\n    - service: api\n      command: ./migrate\n      continue_on_error: true\n  post_deploy:\n    - {service: api, command: ./notify}\nservices:\n  api:\n    health_check_grace_period: 60s\n    ignore: false\n",
		"deployment:\n  timeuot: 5m\n  timeout: 99999999999\n",
		"compose_file: a/../../b\n",
		"hooks:\n  pre_deploy:\n    - &h {service: a, command: b}\n    - *h\n    - <<: *h\n",
		"a: [\n",
		"a: 1\n---\nb: 2\n",
		"? [a]\n: b\n",
		"services:\n  '':\n    ignore: true\n  web: ~\n",
		"deployment: {timeout: -1h, strategy: [x]}\n",
		"version: !!binary aGVsbG8=\n",
		"\xff\xfe",
		"x: &a [*a]\n",
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, problems := stagelyyaml.Parse(data)
		checkProblems(t, problems, stagelyyaml.FileName)
		if stagelyyaml.HasFailure(problems) {
			return
		}
		// Without failures the config must be safe to deploy with.
		if cfg.Version != stagelyyaml.Version {
			t.Errorf("version %q accepted", cfg.Version)
		}
		if d := cfg.Deployment.Timeout; d < stagelyyaml.MinTimeout || d > stagelyyaml.MaxTimeout {
			t.Errorf("timeout %s accepted", d)
		}
		if s := cfg.Deployment.Strategy; s != stagelyyaml.StrategyRecreate && s != stagelyyaml.StrategyStopFirst {
			t.Errorf("strategy %q accepted", s)
		}
		if c := cfg.ComposeFile; strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") {
			t.Errorf("compose_file %q escapes the repository", c)
		}
		for _, h := range append(cfg.Hooks.PreDeploy, cfg.Hooks.PostDeploy...) {
			if h.Service == "" || strings.TrimSpace(h.Command) == "" || h.Line < 1 {
				t.Errorf("incomplete hook accepted: %+v", h)
			}
		}
		for name, s := range cfg.Services {
			if s.HealthCheckGracePeriod < 0 || s.HealthCheckGracePeriod > time.Hour || s.Line < 1 {
				t.Errorf("service %q accepted with %+v", name, s)
			}
		}
	})
}

func FuzzParseComposeServices(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Add([]byte(composeFixture))
	f.Add([]byte("x: &c {image: a}\nservices:\n  web:\n    <<: [*c, {build: .}]\n---\nservices:\n  web: {healthcheck: {test: [NONE]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		services, err := stagelyyaml.ParseComposeServices("compose.yaml", data)
		if err != nil {
			var verr *stagelyyaml.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			if len(verr.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			checkProblems(t, verr.Problems, "compose.yaml")
			return
		}
		for name, s := range services {
			if s.Name != name || s.Line < 1 || (s.Image == "" && !s.Build && !s.Extends) {
				t.Errorf("service %q accepted as %+v", name, s)
			}
		}
	})
}

// checkProblems asserts what every consumer of a Problem relies on: a path, a level,
// a message, and a position that is either a real line or the whole file.
func checkProblems(t *testing.T, problems []stagelyyaml.Problem, path string) {
	t.Helper()
	for _, p := range problems {
		if p.Path != path {
			t.Errorf("problem path %q, want %q: %s", p.Path, path, p)
		}
		if p.Level != stagelyyaml.LevelFailure && p.Level != stagelyyaml.LevelWarning {
			t.Errorf("problem level %q: %s", p.Level, p)
		}
		if strings.TrimSpace(p.Message) == "" {
			t.Errorf("problem without a message at %d:%d", p.Line, p.Column)
		}
		fileLevel := p.Line == 0 && p.Column == 0
		if !fileLevel && (p.Line < 1 || p.Column < 0) {
			t.Errorf("problem at %d:%d is neither on a line nor file-level: %s", p.Line, p.Column, p)
		}
	}
}
