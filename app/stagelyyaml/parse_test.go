package stagelyyaml_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/stagelyyaml"
)

func TestParse_EmptyFileIsZeroConfig(t *testing.T) {
	t.Parallel()
	for name, input := range map[string]string{
		"no bytes":          "",
		"blank lines":       "\n\n  \n",
		"only comments":     "# deploy with defaults\n# nothing else\n",
		"document marker":   "---\n",
		"explicit null":     "~\n",
		"null after marker": "---\nnull\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, input)
			if !reflect.DeepEqual(cfg, stagelyyaml.Default()) {
				t.Fatalf("config = %+v, want Default() %+v", cfg, stagelyyaml.Default())
			}
		})
	}
}

func TestDefault_DocumentedValues(t *testing.T) {
	t.Parallel()
	cfg := stagelyyaml.Default()
	want := stagelyyaml.Config{
		Version:    "1.0",
		Deployment: stagelyyaml.Deployment{Timeout: 300 * time.Second, Strategy: stagelyyaml.StrategyRecreate},
		Services:   map[string]stagelyyaml.ServiceConfig{},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("Default() = %+v, want %+v", cfg, want)
	}
}

func TestParse_DesignExampleReadsEveryField(t *testing.T) {
	t.Parallel()
	input := `version: "1.0"
project_id: "proj_abc123"          # optional
compose_file: "./deploy/docker-compose.prod.yml"
deployment:
  timeout: 300s
  strategy: "recreate"
hooks:
  pre_deploy:
    - service: "backend"
      command: "./migrate_db.sh"
      continue_on_error: false
  post_deploy:
    - service: "backend"
      command: "curl -X POST https://hooks.slack.com/..."
      continue_on_error: true
services:
  backend:
    health_check_grace_period: 60s
    ignore: false
  worker:
    ignore: true
`
	cfg := mustParse(t, input)
	want := stagelyyaml.Config{
		Version:        "1.0",
		ProjectID:      "proj_abc123",
		ProjectIDPos:   stagelyyaml.Pos{Line: 2, Column: 13},
		ComposeFile:    "deploy/docker-compose.prod.yml",
		ComposeFilePos: stagelyyaml.Pos{Line: 3, Column: 15},
		Deployment: stagelyyaml.Deployment{
			Timeout:    300 * time.Second,
			TimeoutPos: stagelyyaml.Pos{Line: 5, Column: 12},
			Strategy:   stagelyyaml.StrategyRecreate,
		},
		Hooks: stagelyyaml.Hooks{
			PreDeploy: []stagelyyaml.Hook{{
				Service: "backend", Command: "./migrate_db.sh",
				Pos: stagelyyaml.Pos{Line: 9, Column: 7}, ServicePos: stagelyyaml.Pos{Line: 9, Column: 16},
			}},
			PostDeploy: []stagelyyaml.Hook{{
				Service: "backend", Command: "curl -X POST https://hooks.slack.com/...", ContinueOnError: true,
				Pos: stagelyyaml.Pos{Line: 13, Column: 7}, ServicePos: stagelyyaml.Pos{Line: 13, Column: 16},
			}},
		},
		Services: map[string]stagelyyaml.ServiceConfig{
			"backend": {
				HealthCheckGracePeriod: time.Minute,
				GracePeriodPos:         stagelyyaml.Pos{Line: 18, Column: 32},
				Pos:                    stagelyyaml.Pos{Line: 17, Column: 3},
			},
			"worker": {Ignore: true, Pos: stagelyyaml.Pos{Line: 20, Column: 3}},
		},
		ServicesPos: stagelyyaml.Pos{Line: 16, Column: 1},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParse_AcceptedSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		check func(stagelyyaml.Config) bool
	}{
		{"bare integer timeout is seconds", "deployment:\n  timeout: 90\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == 90*time.Second }},
		{"quoted integer timeout is seconds", "deployment:\n  timeout: \"90\"\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == 90*time.Second }},
		{"minutes duration", "deployment:\n  timeout: 5m\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == 5*time.Minute }},
		{"compound duration", "deployment:\n  timeout: 1m30s\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == 90*time.Second }},
		{"one hour is the cap and allowed", "deployment:\n  timeout: 1h\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == time.Hour }},
		{"unquoted version 1.0", "version: 1.0\n",
			func(c stagelyyaml.Config) bool { return c.Version == "1.0" }},
		{"stop-first strategy", "deployment:\n  strategy: stop-first\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Strategy == stagelyyaml.StrategyStopFirst }},
		{"strategy alone keeps default timeout", "deployment:\n  strategy: stop-first\n",
			func(c stagelyyaml.Config) bool { return c.Deployment.Timeout == stagelyyaml.DefaultTimeout }},
		{"compose_file with ./ is cleaned", "compose_file: ./deploy/compose.yml\n",
			func(c stagelyyaml.Config) bool { return c.ComposeFile == "deploy/compose.yml" }},
		{"compose_file with .. that stays inside", "compose_file: a/../b/compose.yml\n",
			func(c stagelyyaml.Config) bool { return c.ComposeFile == "b/compose.yml" }},
		{"empty sections are allowed", "deployment:\nhooks:\n  pre_deploy:\nservices:\n",
			func(c stagelyyaml.Config) bool {
				return c.Deployment.Timeout == stagelyyaml.DefaultTimeout && len(c.Hooks.PreDeploy) == 0 && len(c.Services) == 0
			}},
		{"service without settings", "services:\n  web:\n",
			func(c stagelyyaml.Config) bool { _, ok := c.Services["web"]; return ok }},
		{"zero grace period means agent default", "services:\n  web:\n    health_check_grace_period: 0\n",
			func(c stagelyyaml.Config) bool { return c.Services["web"].HealthCheckGracePeriod == 0 }},
		{"aliases are followed", "hooks:\n  pre_deploy:\n    - &m {service: api, command: migrate}\n  post_deploy:\n    - *m\n",
			func(c stagelyyaml.Config) bool {
				return len(c.Hooks.PostDeploy) == 1 && c.Hooks.PostDeploy[0].Command == "migrate"
			}},
		{"multi-line command", "hooks:\n  pre_deploy:\n    - service: api\n      command: |\n        ./a\n        ./b\n",
			func(c stagelyyaml.Config) bool { return c.Hooks.PreDeploy[0].Command == "./a\n./b\n" }},
		{"leading document marker", "---\nversion: \"1.0\"\n",
			func(c stagelyyaml.Config) bool { return c.Version == "1.0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tt.input)
			if !tt.check(cfg) {
				t.Fatalf("config %+v does not hold", cfg)
			}
		})
	}
}

// problemCase expects exactly one failure at a position, with a message fragment.
type problemCase struct {
	name     string
	input    string
	line     int
	column   int
	fragment string
}

func TestParse_RejectsWithPosition(t *testing.T) {
	t.Parallel()
	tests := []problemCase{
		{"unknown top-level key suggests the right one", "versoin: \"1.0\"\n", 1, 1,
			`unknown key "versoin" in stagely.yaml (did you mean "version"?)`},
		{"unknown key lists the allowed ones without a close match", "deployment:\n  replicas: 3\n", 2, 3,
			`unknown key "replicas" in deployment; the keys allowed there are timeout, strategy`},
		{"unknown key in a hook", "hooks:\n  pre_deploy:\n    - service: api\n      command: x\n      comand: y\n", 5, 7,
			`unknown key "comand" in hooks.pre_deploy[0] (did you mean "command"?)`},
		{"unknown key in hooks", "hooks:\n  predeploy: []\n", 2, 3,
			`unknown key "predeploy" in hooks (did you mean "pre_deploy"?)`},
		{"unknown key in a service", "services:\n  web:\n    ignored: true\n", 3, 5,
			`unknown key "ignored" in services.web (did you mean "ignore"?)`},
		{"key differing only in case", "Deployment: {}\n", 1, 1,
			`(did you mean "deployment"?)`},
		{"duration without unit", "deployment:\n  timeout: 5 minutes\n", 2, 12,
			`deployment.timeout: "5 minutes" is not a duration; write a whole number of seconds or a number with a unit`},
		{"fractional number is not a duration", "deployment:\n  timeout: 1.5\n", 2, 12,
			`"1.5" is not a duration`},
		{"zero timeout", "deployment:\n  timeout: 0s\n", 2, 12,
			"deployment.timeout is 0s; it must be between 1s and 1h"},
		{"timeout over the cap", "deployment:\n  timeout: 2h\n", 2, 12,
			"deployment.timeout is 2h; it must be between 1s and 1h"},
		{"huge integer timeout", "deployment:\n  timeout: 99999999999999999999\n", 2, 12,
			"is not a duration"},
		{"timeout as a list", "deployment:\n  timeout: [300]\n", 2, 12,
			"deployment.timeout must be a duration like 300s or 5m; found a list"},
		{"negative grace period", "services:\n  web:\n    health_check_grace_period: -5s\n", 3, 32,
			"services.web.health_check_grace_period is -5s; it must be between 0s and 1h"},
		{"unknown strategy suggests the right one", "deployment:\n  strategy: stopfirst\n", 2, 13,
			`unknown deployment.strategy "stopfirst" (did you mean "stop-first"?); use recreate (the default) or stop-first`},
		{"unknown strategy without a close match", "deployment:\n  strategy: blue-green\n", 2, 13,
			`unknown deployment.strategy "blue-green"; use recreate`},
		{"strategy of the wrong type", "deployment:\n  strategy: 1\n", 2, 13,
			"deployment.strategy must be a string; found the number 1"},
		{"deployment as a list", "deployment:\n  - timeout: 5m\n", 2, 3,
			"deployment must be a mapping; found a list"},
		{"hooks list is a mapping", "hooks:\n  pre_deploy:\n    service: api\n", 3, 5,
			"hooks.pre_deploy must be a list of hooks"},
		{"hook is a string", "hooks:\n  post_deploy:\n    - ./notify.sh\n", 3, 7,
			`hooks.post_deploy[0] must be a mapping with service and command; found the string "./notify.sh"`},
		{"version other than 1.0", "version: \"2\"\n", 1, 10,
			`unsupported version: found the string "2"; write version: "1.0"`},
		{"version as integer", "version: 1\n", 1, 10,
			"unsupported version: found the number 1"},
		{"absolute compose_file", "compose_file: /etc/compose.yml\n", 1, 15,
			`compose_file "/etc/compose.yml" is an absolute path; give a path relative to the project's root directory`},
		{"windows absolute compose_file", "compose_file: 'C:/compose.yml'\n", 1, 15,
			"is an absolute path"},
		{"compose_file escaping with ../", "compose_file: ../x/compose.yml\n", 1, 15,
			`compose_file "../x/compose.yml" points outside the project's root directory`},
		{"compose_file escaping after cleaning", "compose_file: a/../../b.yml\n", 1, 15,
			`compose_file "a/../../b.yml" points outside the project's root directory`},
		{"compose_file with backslashes", "compose_file: 'deploy\\compose.yml'\n", 1, 15,
			"uses backslashes"},
		{"compose_file naming the root", "compose_file: ./\n", 1, 15,
			"names the project's root directory, not a file"},
		{"watch_paths as a string", "watch_paths: libs/**\n", 1, 14,
			"watch_paths must be a list of paths or globs, like [libs/shared/**]; found the string"},
		{"watch path going up", "watch_paths:\n  - libs/**\n  - ../shared/**\n", 3, 5,
			`watch_paths[1] "../shared/**" goes up with ".."; watch_paths are relative to the repository root`},
		{"watch path that is a bad glob", "watch_paths: [\"libs/[a-\"]\n", 1, 15,
			`watch_paths[0] "libs/[a-" is not a valid glob`},
		{"watch path with a backslash", "watch_paths: ['libs\\shared']\n", 1, 15,
			"uses a backslash"},
		{"empty watch path", "watch_paths: ['']\n", 1, 15,
			"watch_paths[0] is empty; write a path or glob relative to the repository root"},
		{"watch path as a number", "watch_paths: [12]\n", 1, 15,
			"watch_paths[0] must be a string; found the number 12"},
		{"watch path naming the root", "watch_paths: ['/']\n", 1, 15,
			"names the repository root"},
		{"empty compose_file", "compose_file: \"\"\n", 1, 15,
			"compose_file is empty; remove the key to use compose.yaml"},
		{"empty hook command", "hooks:\n  pre_deploy:\n    - service: api\n      command: \"\"\n", 4, 16,
			"hooks.pre_deploy[0].command is empty; write the shell command to run, or remove the hook"},
		{"blank hook command", "hooks:\n  pre_deploy:\n    - service: api\n      command: \"   \"\n", 4, 16,
			"hooks.pre_deploy[0].command is empty"},
		{"null hook command", "hooks:\n  pre_deploy:\n    - service: api\n      command:\n", 4, 15,
			"hooks.pre_deploy[0].command is empty"},
		{"hook without service", "hooks:\n  post_deploy:\n    - command: ./notify.sh\n", 3, 7,
			"hooks.post_deploy[0] has no service; add service: <compose service to run the command in>"},
		{"hook without command", "hooks:\n  pre_deploy:\n    - service: api\n", 3, 7,
			"hooks.pre_deploy[0] has no command; add command:"},
		{"hook with empty service", "hooks:\n  pre_deploy:\n    - service: ''\n      command: x\n", 3, 16,
			"hooks.pre_deploy[0].service is empty; name the compose service"},
		{"continue_on_error as yes", "hooks:\n  pre_deploy:\n    - service: api\n      command: x\n      continue_on_error: yes\n", 5, 26,
			`hooks.pre_deploy[0].continue_on_error must be true or false; found the string "yes"`},
		{"ignore as a string", "services:\n  web:\n    ignore: \"true\"\n", 3, 13,
			`services.web.ignore must be true or false; found the string "true"`},
		{"services entry as a list", "services:\n  web: [ignore]\n", 2, 8,
			"services.web must be a mapping of health_check_grace_period and ignore; found a list"},
		{"project_id as a number", "project_id: 12345\n", 1, 13,
			`project_id must be a string; found the number 12345; put it in quotes if you meant the text "12345"`},
		{"empty project_id", "project_id: ''\n", 1, 13,
			"project_id is empty; remove the key or set it to this project's id"},
		{"merge key", "deployment:\n  <<: {timeout: 5m}\n", 2, 3,
			"merge keys (<<) are not supported in stagely.yaml; write the keys out"},
		{"list as a key", "? [a]\n: b\n", 1, 3,
			"keys in stagely.yaml must be plain names; found a list"},
		{"top level is a list", "- deployment\n", 1, 1,
			"stagely.yaml must be a mapping of settings such as version, deployment and hooks; found a list"},
		{"top level is a string", "deploy please\n", 1, 1,
			`found the string "deploy please"`},
	}
	runProblemCases(t, tests)
}

func TestParse_DuplicateKeysRejected(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{"top-level key twice", "version: \"1.0\"\nversion: \"1.0\"\n", 2, 1,
			`duplicate key "version" in stagely.yaml (first at line 1); keep only one`},
		{"deployment key twice", "deployment:\n  timeout: 5m\n  timeout: 10m\n", 3, 3,
			`duplicate key "timeout" in deployment (first at line 2)`},
		{"service listed twice", "services:\n  web: {}\n  web: {ignore: true}\n", 3, 3,
			`duplicate key "web" in services (first at line 2)`},
		{"hook key twice", "hooks:\n  pre_deploy:\n    - service: a\n      command: x\n      service: b\n", 5, 7,
			`duplicate key "service" in hooks.pre_deploy[0] (first at line 3)`},
	})
}

func TestParse_MultipleDocumentsRejected(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{"second document", "version: \"1.0\"\n---\ndeployment: {}\n", 2, 1,
			`stagely.yaml holds more than one YAML document; remove this "---"`},
		{"trailing empty document", "version: \"1.0\"\n---\n", 2, 1,
			"holds more than one YAML document"},
	})
}

func TestParse_SyntaxErrorHasLineOnly(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{"unclosed flow sequence", "version: \"1.0\"\nservices: [\n", 2, 0,
			"invalid YAML: did not find expected node content; check the indentation and quoting"},
		{"tab indentation", "deployment:\n\ttimeout: 5m\n", 2, 0,
			"invalid YAML: found character that cannot start any token"},
		{"missing flow mapping end is placed on the next line yaml.v3 names", "deployment: {timeout: 5m\nhooks: {}\n", 2, 0,
			"invalid YAML: did not find expected ',' or '}'"},
		{"bad indentation after a block", "deployment:\n  timeout: 5m\n strategy: recreate\n", 3, 0,
			"invalid YAML: did not find expected key"},
		{"unterminated quote at the end is clamped to the last line", "version: \"1.0\"\nproject_id: 'abc\n", 2, 0,
			"invalid YAML: found unexpected end of stream"},
		{"error on the first line, which yaml.v3 leaves unnumbered", "version: a: b\n", 1, 0,
			"invalid YAML: mapping values are not allowed in this context"},
		{"parser error on the first line", "deployment: {timeout: 5m\n", 1, 0,
			"invalid YAML: did not find expected ',' or '}'"},
		{"undefined alias is file-level", "deployment: *missing\n", 0, 0,
			"invalid YAML: unknown anchor 'missing' referenced; fix the syntax"},
		{"control character is file-level", "\x01", 0, 0,
			"invalid YAML: control characters are not allowed; fix the syntax"},
	})
}

func TestParse_OversizedFileIsFileLevel(t *testing.T) {
	t.Parallel()
	input := "# " + strings.Repeat("x", stagelyyaml.MaxFileSize) + "\n"
	runProblemCases(t, []problemCase{
		{"too large", input, 0, 0, "more than the 262144-byte limit"},
	})
}

func TestParse_ReportsEveryProblemInOnePass(t *testing.T) {
	t.Parallel()
	input := "deployment:\n  timeout: soon\n  strategy: fast\nhooks:\n  pre_deploy:\n    - command: ''\n"
	_, problems := stagelyyaml.Parse([]byte(input))
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`stagely.yaml:2:12: deployment.timeout: "soon" is not a duration; write a whole number of seconds or a number with a unit (s, m, h), like 300s or 5m`,
		`stagely.yaml:3:13: unknown deployment.strategy "fast"; use recreate (the default) or stop-first`,
		`stagely.yaml:6:7: hooks.pre_deploy[0] has no service; add service: <compose service to run the command in>`,
		`stagely.yaml:6:16: hooks.pre_deploy[0].command is empty; write the shell command to run, or remove the hook`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func runProblemCases(t *testing.T, tests []problemCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, problems := stagelyyaml.Parse([]byte(tt.input))
			assertOneProblem(t, problems, stagelyyaml.FileName, stagelyyaml.LevelFailure, tt.line, tt.column, tt.fragment)
		})
	}
}

// mustParse parses a stagely.yaml that has no problems.
func mustParse(t *testing.T, input string) stagelyyaml.Config {
	t.Helper()
	cfg, problems := stagelyyaml.Parse([]byte(input))
	if len(problems) != 0 {
		t.Fatalf("parse %q: problems %v, want none", input, problems)
	}
	return cfg
}

func assertOneProblem(t *testing.T, problems []stagelyyaml.Problem, path string, level stagelyyaml.Level, line, column int, fragment string) {
	t.Helper()
	if len(problems) != 1 {
		t.Fatalf("got %d problems, want 1:\n%s", len(problems), render(problems))
	}
	p := problems[0]
	if p.Path != path || p.Level != level || p.Line != line || p.Column != column {
		t.Errorf("problem at %s:%d:%d (%s), want %s:%d:%d (%s): %s", p.Path, p.Line, p.Column, p.Level, path, line, column, level, p.Message)
	}
	if !strings.Contains(p.Message, fragment) {
		t.Errorf("message %q does not contain %q", p.Message, fragment)
	}
}

func render(problems []stagelyyaml.Problem) string {
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = "  " + p.String()
	}
	return strings.Join(lines, "\n")
}

func TestParse_ProblemListIsCapped(t *testing.T) {
	t.Parallel()
	input := strings.Repeat("nope: 1\n", 150)
	_, problems := stagelyyaml.Parse([]byte(input))
	if len(problems) != 101 {
		t.Fatalf("got %d problems, want 100 and a summary", len(problems))
	}
	last := problems[100]
	if last.Line != 0 || !strings.Contains(last.Message, "50 more problems not listed") {
		t.Fatalf("last problem = %s, want the file-level summary of 50 more", last)
	}
	if problems[99].Line != 100 {
		t.Fatalf("problem 100 is at line %d, want the first 100 lines reported in order", problems[99].Line)
	}
}
