package stagelyyaml_test

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stagely/stagely/app/stagelyyaml"
)

func TestComposeCandidates_ComposeOrderOfPreference(t *testing.T) {
	t.Parallel()
	want := []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}
	if got := stagelyyaml.ComposeCandidates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ComposeCandidates() = %v, want %v", got, want)
	}
}

// existsIn answers "is this a file" from an in-memory repository tree.
func existsIn(repo fstest.MapFS) func(string) (bool, error) {
	return func(path string) (bool, error) {
		info, err := fs.Stat(repo, path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return !info.IsDir(), nil
	}
}

func TestResolveComposeFile(t *testing.T) {
	t.Parallel()
	file := &fstest.MapFile{Data: []byte("services: {}\n")}
	tests := []struct {
		name     string
		config   string
		repo     fstest.MapFS
		want     string
		line     int
		fragment string
	}{
		{"configured file is used", "compose_file: ./deploy/prod.yml\n",
			fstest.MapFS{"deploy/prod.yml": file, "compose.yaml": file}, "deploy/prod.yml", 0, ""},
		{"compose.yaml wins over every other name", "",
			fstest.MapFS{"docker-compose.yaml": file, "docker-compose.yml": file, "compose.yml": file, "compose.yaml": file}, "compose.yaml", 0, ""},
		{"compose.yml wins over docker-compose names", "",
			fstest.MapFS{"docker-compose.yaml": file, "docker-compose.yml": file, "compose.yml": file}, "compose.yml", 0, ""},
		{"docker-compose.yml wins over docker-compose.yaml", "",
			fstest.MapFS{"docker-compose.yaml": file, "docker-compose.yml": file}, "docker-compose.yml", 0, ""},
		{"docker-compose.yaml is the last resort", "",
			fstest.MapFS{"docker-compose.yaml": file}, "docker-compose.yaml", 0, ""},
		{"a directory named compose.yaml is not a compose file", "",
			fstest.MapFS{"compose.yaml/x": file, "compose.yml": file}, "compose.yml", 0, ""},
		{"missing configured file points at compose_file", "version: \"1.0\"\ncompose_file: deploy/prod.yml\n",
			fstest.MapFS{"compose.yaml": file}, "", 2, `compose_file "deploy/prod.yml" is not in the repository at this commit`},
		{"no default name present", "",
			fstest.MapFS{"docker-compose.prod.yml": file}, "", 0,
			"no compose file in the project's root directory (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml); add one, or set compose_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tt.config)
			got, err := stagelyyaml.ResolveComposeFile(cfg, existsIn(tt.repo))
			if tt.fragment == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ResolveComposeFile = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var verr *stagelyyaml.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			assertOneProblem(t, verr.Problems, stagelyyaml.FileName, stagelyyaml.LevelFailure, tt.line, columnIf(tt.line, 15), tt.fragment)
		})
	}
}

func columnIf(line, column int) int {
	if line == 0 {
		return 0
	}
	return column
}

func TestResolveComposeFile_LookupErrorIsWrapped(t *testing.T) {
	t.Parallel()
	broken := errors.New("contents API: 502")
	_, err := stagelyyaml.ResolveComposeFile(stagelyyaml.Default(), func(string) (bool, error) { return false, broken })
	if !errors.Is(err, broken) {
		t.Fatalf("error = %v, want it to wrap %v", err, broken)
	}
	var verr *stagelyyaml.ValidationError
	if errors.As(err, &verr) {
		t.Fatalf("a lookup failure must not read as a validation problem: %v", err)
	}
	if !strings.Contains(err.Error(), "look for compose file compose.yaml") {
		t.Fatalf("error %q lacks context", err)
	}
}

func TestParseComposeServices_ReadsNamesLinesHealthAndBuild(t *testing.T) {
	t.Parallel()
	input := `name: shop
x-health: &health
  healthcheck:
    test: ["CMD", "wget", "-qO-", "http://localhost/healthz"]
    interval: 5s
services:
  web:
    build: .
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://localhost || exit 1"]
  db:
    image: postgres:16
    healthcheck:
      disable: true
  worker:
    image: "${REGISTRY:-local}/worker"
    healthcheck:
      test: ["NONE"]
  api:
    <<: *health
    image: shop/api
  cron:
    extends:
      service: worker
volumes:
  data: {}
`
	got, err := stagelyyaml.ParseComposeServices("deploy/compose.yml", []byte(input))
	if err != nil {
		t.Fatalf("ParseComposeServices: %v", err)
	}
	want := map[string]stagelyyaml.ComposeService{
		"web":    {Name: "web", Pos: stagelyyaml.Pos{Line: 7, Column: 3}, Build: true, Healthcheck: true},
		"db":     {Name: "db", Pos: stagelyyaml.Pos{Line: 11, Column: 3}, Image: "postgres:16", HealthcheckDisabled: true},
		"worker": {Name: "worker", Pos: stagelyyaml.Pos{Line: 15, Column: 3}, Image: "${REGISTRY:-local}/worker", HealthcheckDisabled: true},
		"api":    {Name: "api", Pos: stagelyyaml.Pos{Line: 19, Column: 3}, Image: "shop/api", Healthcheck: true},
		"cron":   {Name: "cron", Pos: stagelyyaml.Pos{Line: 22, Column: 3}, Extends: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("services =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseComposeServices_LaterDocumentOverridesEarlier(t *testing.T) {
	t.Parallel()
	input := "services:\n  web:\n    image: web:1\n---\nservices:\n  web:\n    healthcheck:\n      test: [CMD, 'true']\n  db:\n    image: postgres\n"
	got, err := stagelyyaml.ParseComposeServices("compose.yaml", []byte(input))
	if err != nil {
		t.Fatalf("ParseComposeServices: %v", err)
	}
	if web := got["web"]; web.Image != "web:1" || !web.Healthcheck || web.Line != 2 {
		t.Errorf("web = %+v, want image from the first document, health check from the second, line 2", web)
	}
	if _, ok := got["db"]; !ok || len(got) != 2 {
		t.Errorf("services = %v, want web and db", got)
	}
}

func TestParseComposeServices_IncludeWithoutServicesIsAccepted(t *testing.T) {
	t.Parallel()
	got, err := stagelyyaml.ParseComposeServices("compose.yaml", []byte("include:\n  - ./db/compose.yaml\n"))
	if err != nil || len(got) != 0 {
		t.Fatalf("ParseComposeServices = %v, %v; want no services and no error", got, err)
	}
}

func TestParseComposeServices_RejectsWithPosition(t *testing.T) {
	t.Parallel()
	tests := []problemCase{
		{"syntax error", "services:\n  web:\n    image: [x\n", 3, 0, "invalid YAML"},
		{"no services", "volumes:\n  data: {}\n", 0, 0,
			"deploy/compose.yml defines no services; add a services: section with at least one service"},
		{"empty services section", "services:\n", 1, 1, "defines no services"},
		{"service with neither image nor build", "services:\n  web:\n    ports: [\"80:80\"]\n", 2, 3,
			`service "web" has neither image nor build; add image: <image name> or build: <directory with a Dockerfile>`},
		{"service without settings", "services:\n  web:\n", 2, 7,
			`service "web" must be a mapping of settings (image:, build:, ...); found an empty value`},
		{"services as a list", "services:\n  - web\n", 2, 3,
			"services must be a mapping of service names to their settings; found a list"},
		{"service defined twice", "services:\n  web:\n    image: a\n  web:\n    image: b\n", 4, 3,
			`duplicate key "web" in services (first at line 2)`},
		{"healthcheck as a string", "services:\n  web:\n    image: a\n    healthcheck: curl localhost\n", 4, 18,
			`healthcheck of service "web" must be a mapping`},
		{"image as a mapping", "services:\n  web:\n    image: {name: a}\n", 3, 12,
			`image of service "web" must be an image name; found a mapping`},
		{"top level is a list", "- services\n", 1, 1,
			"deploy/compose.yml must be a mapping with a services: section; found a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			services, err := stagelyyaml.ParseComposeServices("deploy/compose.yml", []byte(tt.input))
			var verr *stagelyyaml.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v (services %v), want a *ValidationError", err, services)
			}
			if services != nil {
				t.Errorf("services = %v, want nil alongside an error", services)
			}
			assertOneProblem(t, verr.Problems, "deploy/compose.yml", stagelyyaml.LevelFailure, tt.line, tt.column, tt.fragment)
		})
	}
}

func TestParseComposeServices_MergeBombIsBounded(t *testing.T) {
	t.Parallel()
	// Each level merges the previous one ten times: 10^9 pairs if expanded naively.
	var b strings.Builder
	b.WriteString("x0: &a0 {image: a}\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + "\n  <<: [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("services:\n  web:\n    <<: *a9\n")
	_, err := stagelyyaml.ParseComposeServices("compose.yaml", []byte(b.String()))
	var verr *stagelyyaml.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(verr.Error(), "merge keys (<<) in service web nest or repeat too much") {
		t.Fatalf("error = %v, want the merge limit", err)
	}
}
