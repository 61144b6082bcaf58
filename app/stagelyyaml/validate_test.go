package stagelyyaml_test

import (
	"testing"

	"github.com/stagely/stagely/app/stagelyyaml"
)

// composeFixture is the compose file every Validate case checks against.
const composeFixture = `services:
  backend:
    build: .
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/healthz"]
  db:
    image: postgres:16
    healthcheck:
      disable: true
  worker:
    image: shop/worker
  cron:
    extends:
      service: worker
`

// fixtureServices is composeFixture's services, read as the compose file at path.
func fixtureServices(t *testing.T, path string) map[string]stagelyyaml.ComposeService {
	t.Helper()
	services, err := stagelyyaml.ParseComposeServices(path, []byte(composeFixture))
	if err != nil {
		t.Fatalf("compose fixture: %v", err)
	}
	return services
}

func TestValidate(t *testing.T) {
	t.Parallel()
	compose := fixtureServices(t, "deploy/compose.yml")
	tests := []struct {
		name     string
		config   string
		linked   string
		level    stagelyyaml.Level
		line     int
		column   int
		fragment string
	}{
		{"pre_deploy hook on a service compose lacks", "hooks:\n  pre_deploy:\n    - service: backnd\n      command: ./migrate\n", "",
			stagelyyaml.LevelFailure, 3, 16,
			`hooks.pre_deploy[0] runs in service "backnd", which deploy/compose.yml does not define (did you mean "backend"?); services in deploy/compose.yml: backend, cron, db, worker`},
		{"post_deploy hook on a service compose lacks", "hooks:\n  post_deploy:\n    - service: backend\n      command: a\n    - service: web\n      command: b\n", "",
			stagelyyaml.LevelFailure, 5, 16,
			`hooks.post_deploy[1] runs in service "web", which deploy/compose.yml does not define; services in`},
		{"services entry naming an unknown service", "services:\n  backend: {}\n  wrker:\n    ignore: true\n", "",
			stagelyyaml.LevelFailure, 3, 3,
			`services.wrker names a service deploy/compose.yml does not define (did you mean "worker"?)`},
		{"project_id of another project names both ids", "version: \"1.0\"\nproject_id: proj_other\n", "proj_mine",
			stagelyyaml.LevelFailure, 2, 13,
			`project_id "proj_other" does not match "proj_mine", the Stagely project this repository is linked to`},
		{"every service ignored", "services:\n  backend: {ignore: true}\n  db: {ignore: true}\n  worker: {ignore: true}\n  cron: {ignore: true}\n", "",
			stagelyyaml.LevelWarning, 1, 1,
			"every service in deploy/compose.yml has ignore: true, so a deployment changes nothing"},
		{"grace period without a healthcheck", "services:\n  worker:\n    health_check_grace_period: 30s\n", "",
			stagelyyaml.LevelWarning, 3, 32,
			`services.worker.health_check_grace_period only matters for a service with a health check, and service "worker" has no healthcheck in deploy/compose.yml`},
		{"grace period with the healthcheck disabled", "services:\n  db:\n    health_check_grace_period: 30s\n", "",
			stagelyyaml.LevelWarning, 3, 32,
			`services.db.health_check_grace_period has no effect: the health check of service "db" is disabled in deploy/compose.yml`},
		{"grace period longer than the deployment timeout", "deployment:\n  timeout: 2m\nservices:\n  backend:\n    health_check_grace_period: 10m\n", "",
			stagelyyaml.LevelWarning, 5, 32,
			"services.backend.health_check_grace_period (10m) is longer than deployment.timeout (2m), so the deployment times out first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tt.config)
			got := stagelyyaml.Validate(cfg, compose, "deploy/compose.yml", tt.linked)
			assertOneProblem(t, got, stagelyyaml.FileName, tt.level, tt.line, tt.column, tt.fragment)
		})
	}
}

func TestValidate_AcceptsConsistentConfig(t *testing.T) {
	t.Parallel()
	compose := fixtureServices(t, "compose.yaml")
	tests := []struct {
		name   string
		config string
		linked string
	}{
		{"zero config", "", "proj_mine"},
		{"matching project_id", "project_id: proj_mine\n", "proj_mine"},
		{"project_id with no linked project yet", "project_id: proj_mine\n", ""},
		{"hooks on existing services", "hooks:\n  pre_deploy:\n    - {service: backend, command: ./migrate}\n  post_deploy:\n    - {service: worker, command: ./notify}\n", ""},
		{"grace period on a service with a healthcheck", "services:\n  backend:\n    health_check_grace_period: 60s\n", ""},
		{"grace period on an extending service", "services:\n  cron:\n    health_check_grace_period: 60s\n", ""},
		{"some services ignored", "services:\n  db: {ignore: true}\n  worker: {ignore: true}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tt.config)
			if got := stagelyyaml.Validate(cfg, compose, "compose.yaml", tt.linked); len(got) != 0 {
				t.Fatalf("Validate problems:\n%s", render(got))
			}
		})
	}
}

func TestValidate_ProblemsOrderedByLine(t *testing.T) {
	t.Parallel()
	compose := fixtureServices(t, "compose.yaml")
	config := "project_id: a\nhooks:\n  post_deploy:\n    - {service: x, command: y}\n  pre_deploy:\n    - {service: z, command: y}\nservices:\n  zz: {}\n  aa: {}\n"
	got := stagelyyaml.Validate(mustParse(t, config), compose, "compose.yaml", "b")
	wantLines := []int{1, 4, 6, 8, 9}
	if len(got) != len(wantLines) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(wantLines), render(got))
	}
	for i, p := range got {
		if p.Line != wantLines[i] || p.Level != stagelyyaml.LevelFailure {
			t.Errorf("problem %d at line %d (%s), want line %d failure: %s", i, p.Line, p.Level, wantLines[i], p.Message)
		}
	}
}
