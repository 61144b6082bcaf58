package deployer_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

// dbRepo is a database-like db that answers "db <version>" over HTTP, and becomes healthy,
// only seconds after it starts, and an api that depends on it being healthy.
func dbRepo(img, dbVersion string) map[string]string {
	return map[string]string{"compose.yaml": fmt.Sprintf(`services:
  db:
    image: %[1]s
    init: true
    environment: {VERSION: %[2]s}
    command: ["sh", "-c", "sleep 2; mkdir -p /www; echo db $$VERSION > /www/v; exec httpd -f -p 8080 -h /www"]
    healthcheck: {test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/v"], interval: 1s, timeout: 2s, retries: 30}
  api:
    image: %[1]s
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
    depends_on: {db: {condition: service_healthy}}
`, img, dbVersion)}
}

func TestDeploy_PreDeployHookReachesItsDependencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	migrate := protocol.JobConfig{Hooks: protocol.Hooks{PreDeploy: []protocol.Hook{
		{Service: "api", Command: "wget -q -O - http://db:8080/v | sed 's/^/migrating against /'"},
	}}}

	// First deploy: db exists only as the container the build step created; the hook
	// needs it started and healthy.
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), dbRepo(e.image, "v1"), migrate, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	for _, want := range []string{"starting db for the pre_deploy hooks", "migrating against db v1"} {
		if !strings.Contains(rec.text(), want) {
			t.Errorf("first deploy's log lacks %q:\n%s", want, rec.text())
		}
	}
	before := e.containerIDs()

	// Later deploy changing db itself: the running db is left alone for the hook, and the
	// swap replaces it afterwards.
	res, rec = e.redeploy(dbRepo(e.image, "v2"), migrate, nil)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if !strings.Contains(rec.text(), "migrating against db v1") || strings.Contains(rec.text(), "starting db") {
		t.Errorf("the hook did not run against the running db, or db was started again:\n%s", rec.text())
	}
	after := e.containerIDs()
	if after["db"] == before["db"] {
		t.Error("db was not replaced by the swap")
	}
	if got := dockertest.ContainerEnv(t, after["db"])["VERSION"]; got != "v2" {
		t.Errorf("db runs %q after the swap, want v2", got)
	}
}

func TestDeploy_FailedHookErrorNamesTheCommandAndShowsItsOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.deployV1()
	files := threeServices(e.image, "v2", "")
	files["compose.yaml"] = strings.Replace(files["compose.yaml"], "  backend:\n", "  backend:\n    working_dir: /app\n    volumes: [./:/app]\n", 1)
	files["migrate_db.sh@x"] = "#!/bin/sh\necho applying migration 42\necho migration 42 failed: relation exists >&2\nexit 1\n"
	cfg := protocol.JobConfig{Hooks: protocol.Hooks{PreDeploy: []protocol.Hook{{Service: "backend", Command: "./migrate_db.sh"}}}}

	res, rec := e.redeploy(files, cfg, nil)
	requireStatus(t, res, protocol.StatusFailure, rec)
	first, _, _ := strings.Cut(res.Error, "\n")
	if want := "The deploy failed: pre_deploy hook `./migrate_db.sh` in backend exited with code 1. Its last output lines:"; first != want {
		t.Errorf("error's first line = %q, want %q", first, want)
	}
	for _, want := range []string{"applying migration 42", "migration 42 failed: relation exists", "Nothing was swapped"} {
		if !strings.Contains(res.Error, want) {
			t.Errorf("error lacks %q:\n%s", want, res.Error)
		}
	}
	for _, wrapper := range []string{"trap", "stagely-hook", "sh -c", "wait $pid", "docker compose", "--rm"} {
		if strings.Contains(res.Error, wrapper) {
			t.Errorf("error shows the agent's wrapper (%q):\n%s", wrapper, res.Error)
		}
	}
	e.requireUnchanged(before)
}

func TestDeploy_FailingPostDeployHookKeepsTheHealthyRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		continueOnError bool
		wantError       string
	}{
		{name: "without continue_on_error the result warns", wantError: "The deploy succeeded, but the post_deploy hook `echo notify failed; exit 7` in web exited with code 7."},
		{name: "with continue_on_error the failure is only logged", continueOnError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.deployV1()
			cfg := protocol.JobConfig{Hooks: protocol.Hooks{PostDeploy: []protocol.Hook{
				{Service: "web", Command: "echo notify failed; exit 7", ContinueOnError: tc.continueOnError},
			}}}
			res, rec := e.redeploy(threeServices(e.image, "v2", ""), cfg, nil)
			requireStatus(t, res, protocol.StatusSuccess, rec)
			if tc.wantError == "" && res.Error != "" || !strings.HasPrefix(res.Error, tc.wantError) {
				t.Errorf("error = %q, want it to start with %q", res.Error, tc.wantError)
			}
			if tc.wantError != "" && !strings.Contains(res.Error, "notify failed") {
				t.Errorf("error lacks the hook's output: %q", res.Error)
			}
			if strings.Contains(strings.Join(rec.phases, ","), protocol.PhaseRollingBack) {
				t.Errorf("phases %v: a failed post_deploy hook rolled back", rec.phases)
			}
			e.requireVersion("backend", "v2")
			if !strings.Contains(rec.text(), "notify failed") {
				t.Error("the hook's output is not in the log")
			}
		})
	}
}
