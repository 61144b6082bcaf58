package deployer_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

// svc is one busybox service of a test compose file.
type svc struct {
	name    string
	version string // written into VERSION, so changing it changes the service's config
	health  string // "", "pass" or "fail"
	extra   string // more YAML lines under the service, indented by 4
}

func composeFile(img string, services ...svc) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  %s:\n    image: %s\n    init: true\n", s.name, img)
		fmt.Fprintf(&b, "    command: [\"sh\", \"-c\", \"echo booting $$VERSION; while :; do sleep 1; done\"]\n")
		fmt.Fprintf(&b, "    environment:\n      VERSION: %q\n", s.version)
		switch s.health {
		case "pass":
			b.WriteString("    healthcheck: {test: [\"CMD\", \"true\"], interval: 1s, timeout: 2s, retries: 2}\n")
		case "fail":
			b.WriteString("    healthcheck: {test: [\"CMD\", \"false\"], interval: 1s, timeout: 2s, retries: 1}\n")
		}
		b.WriteString(s.extra)
	}
	return b.String()
}

func threeServices(img, backendVersion, backendHealth string) map[string]string {
	return map[string]string{
		"compose.yaml": composeFile(img,
			svc{name: "web", version: "v1"},
			svc{name: "backend", version: backendVersion, health: backendHealth},
			svc{name: "worker", version: "v1"}),
		"README.md": "shop\n",
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestDeploy_ThreeServicesComeUpWithScopedSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secrets := []protocol.Secret{
		{Key: "SHARED", Value: "global-value-1", Scope: protocol.ScopeGlobal},
		{Key: "DB_URL", Value: "postgres://backend-only", Scope: "backend"},
		{Key: "MODE", Value: "global-mode", Scope: protocol.ScopeGlobal},
		{Key: "MODE", Value: "backend-mode", Scope: "backend"},
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), threeServices(e.image, "v1", "pass"), protocol.JobConfig{}, secrets, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)

	if len(res.Services) != 3 {
		t.Fatalf("services = %+v, want 3", res.Services)
	}
	for _, s := range res.Services {
		if s.State != "running" || s.ContainerID == "" {
			t.Errorf("service %+v not running", s)
		}
		if s.Name == "backend" && s.Health != "healthy" {
			t.Errorf("backend health = %q, want healthy", s.Health)
		}
	}
	wantPhases := []string{protocol.PhaseFetching, protocol.PhaseBuilding, protocol.PhaseDeploying, protocol.PhaseVerifying}
	if strings.Join(rec.phases, ",") != strings.Join(wantPhases, ",") {
		t.Errorf("phases = %v, want %v", rec.phases, wantPhases)
	}
	ids := e.containerIDs()
	web := dockertest.ContainerEnv(t, ids["web"])
	backend := dockertest.ContainerEnv(t, ids["backend"])
	if web["SHARED"] != "global-value-1" || web["MODE"] != "global-mode" {
		t.Errorf("web env misses global secrets: %v", web)
	}
	if _, ok := web["DB_URL"]; ok {
		t.Error("web got the backend-scoped DB_URL")
	}
	if backend["DB_URL"] != "postgres://backend-only" || backend["MODE"] != "backend-mode" || backend["SHARED"] != "global-value-1" {
		t.Errorf("backend env = %v, want its scoped secrets winning over global ones", backend)
	}
}

func TestDeploy_ChangingABackendSecretRecreatesOnlyBackend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	files := threeServices(e.image, "v1", "")
	secrets := func(v string) []protocol.Secret {
		return []protocol.Secret{{Key: "G", Value: "global-same", Scope: protocol.ScopeGlobal}, {Key: "API_KEY", Value: v, Scope: "backend"}}
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), files, protocol.JobConfig{}, secrets("first-key-1"), nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	before := e.containerIDs()

	res, rec = e.redeploy(files, protocol.JobConfig{}, secrets("second-key-2"))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	after := e.containerIDs()
	for _, s := range []string{"web", "worker"} {
		if before[s] != after[s] {
			t.Errorf("%s was recreated (%s -> %s)", s, before[s], after[s])
		}
	}
	if before["backend"] == after["backend"] {
		t.Error("backend kept its container; want it recreated with the new secret")
	}
	if got := dockertest.ContainerEnv(t, after["backend"])["API_KEY"]; got != "second-key-2" {
		t.Errorf("API_KEY = %q", got)
	}
}

func TestDeploy_SecretValuesArriveByteExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	values := map[string]string{
		"DOLLAR":    "pa$$word$",
		"BRACED":    "${HOME}-${UNSET:-dflt}-$PATH",
		"EQUALS":    "a=b==c",
		"QUOTES":    `it's "quoted" \backslash\ 'single'`,
		"SPACES":    "  leading and trailing  ",
		"UNICODE":   "héllo wörld ✓ 日本語 🚀",
		"MULTILINE": "-----BEGIN KEY-----\nline two $x\n\nlast line\n",
		"YAMLISH":   "key: value # not a comment\n- item",
		"SHORT":     "$",
	}
	var secrets []protocol.Secret
	for k, v := range values {
		secrets = append(secrets, protocol.Secret{Key: k, Value: v, Scope: "backend"})
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), threeServices(e.image, "v1", ""), protocol.JobConfig{}, secrets, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)

	id := e.containerIDs()["backend"]
	got := dockertest.ContainerEnv(t, id)
	for k, want := range values {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	// What a process inside sees, not only the container's config.
	out, err := execOutput("docker", "exec", id, "sh", "-c", `printf %s "$MULTILINE"`)
	if err != nil || out != values["MULTILINE"] {
		t.Errorf("printenv MULTILINE = %q, %v", out, err)
	}
}

func TestDeploy_PreDeployHook(t *testing.T) {
	t.Parallel()
	t.Run("a failing hook aborts before anything is swapped", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		before := e.deployV1()

		cfg := protocol.JobConfig{Hooks: protocol.Hooks{PreDeploy: []protocol.Hook{{Service: "backend", Command: "echo migrating; exit 3"}}}}
		res, rec := e.redeploy(threeServices(e.image, "v2", ""), cfg, nil)
		requireStatus(t, res, protocol.StatusFailure, rec)
		if !strings.Contains(res.Error, "pre_deploy hook") || !strings.Contains(res.Error, "untouched") {
			t.Errorf("error = %q, want it to name the hook and say nothing was swapped", res.Error)
		}
		if !strings.Contains(rec.text(), "migrating") {
			t.Error("hook output not in the log")
		}
		e.requireUnchanged(before)
	})
	t.Run("continue_on_error goes on and the hook sees the new config", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		before := e.deployV1()

		cfg := protocol.JobConfig{Hooks: protocol.Hooks{
			PreDeploy: []protocol.Hook{
				{Service: "backend", Command: "exit 3", ContinueOnError: true},
				{Service: "backend", Command: `echo "hook sees $VERSION"`},
			},
			PostDeploy: []protocol.Hook{{Service: "web", Command: "echo post deploy ran"}},
		}}
		res, rec := e.redeploy(threeServices(e.image, "v2", ""), cfg, nil)
		requireStatus(t, res, protocol.StatusSuccess, rec)
		for _, want := range []string{"hook sees v2", "post deploy ran", "continue_on_error"} {
			if !strings.Contains(rec.text(), want) {
				t.Errorf("log lacks %q", want)
			}
		}
		if after := e.containerIDs(); after["backend"] == before["backend"] {
			t.Error("backend not swapped")
		}
	})
}

func TestDeploy_UnhealthyServiceRollsBackToPreviousSHA(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secrets := []protocol.Secret{{Key: "TOKEN", Value: "rollback-secret-value", Scope: "backend"}}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), threeServices(e.image, "v1", "pass"), protocol.JobConfig{}, secrets, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	before := e.containerIDs()

	cfg := protocol.JobConfig{Services: map[string]protocol.ServiceConfig{"backend": {HealthCheckGracePeriod: protocol.Duration(4 * time.Second)}}}
	res, rec = e.redeploy(threeServices(e.image, "v2", "fail"), cfg, secrets)
	requireStatus(t, res, protocol.StatusRolledBack, rec)
	for _, want := range []string{"backend", "healthy", "booting v2", "Rolled back to " + sha(1)[:7]} {
		if !strings.Contains(res.Error, want) {
			t.Errorf("error lacks %q: %s", want, res.Error)
		}
	}
	var backend protocol.ServiceStatus
	for _, s := range res.Services {
		if s.Name == "backend" {
			backend = s
		}
	}
	if backend.State != "running" || backend.Health != "healthy" || !strings.Contains(strings.Join(backend.LogTail, "\n"), "booting v2") {
		t.Errorf("backend after rollback = %+v, want healthy with the failed version's log tail", backend)
	}
	after := e.containerIDs()
	if after["web"] != before["web"] || after["worker"] != before["worker"] {
		t.Errorf("unchanged services were recreated: %v -> %v", before, after)
	}
	if got := dockertest.ContainerEnv(t, after["backend"]); got["VERSION"] != "v1" || got["TOKEN"] != "rollback-secret-value" {
		t.Errorf("backend after rollback runs VERSION=%q TOKEN set=%v; want v1 with its secret", got["VERSION"], got["TOKEN"] != "")
	}
	if !strings.Contains(strings.Join(rec.phases, ","), protocol.PhaseRollingBack) {
		t.Errorf("phases %v lack rolling_back", rec.phases)
	}
}

func TestDeploy_FirstDeployFailureIsReportedWithoutRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := protocol.JobConfig{Services: map[string]protocol.ServiceConfig{"backend": {HealthCheckGracePeriod: protocol.Duration(3 * time.Second)}}}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), threeServices(e.image, "v1", "fail"), cfg, nil, nil))
	requireStatus(t, res, protocol.StatusFailure, rec)
	if !strings.Contains(res.Error, "nothing to roll back") {
		t.Errorf("error = %s", res.Error)
	}
}

func TestDeploy_TimeoutRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deployV1()

	// The timeout must strike after the swap: 30s leaves a loaded machine ample time to get
	// there (it takes seconds), and the unhealthy backend's hour of grace keeps verification
	// waiting until the timeout does strike.
	cfg := protocol.JobConfig{Timeout: protocol.Duration(30 * time.Second),
		Services: map[string]protocol.ServiceConfig{"backend": {HealthCheckGracePeriod: protocol.Duration(time.Hour)}}}
	res, rec := e.redeploy(threeServices(e.image, "v2", "fail"), cfg, nil)
	requireStatus(t, res, protocol.StatusRolledBack, rec)
	if !strings.Contains(res.Error, "timed out after 30s") {
		t.Errorf("error = %s, want the timeout named", res.Error)
	}
	e.requireVersion("backend", "v1")
}

func TestDeploy_TimeoutBeforeTheSwapIsTimedOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := protocol.JobConfig{Timeout: protocol.Duration(2 * time.Second),
		Hooks: protocol.Hooks{PreDeploy: []protocol.Hook{{Service: "backend", Command: "sleep 30"}}}}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), threeServices(e.image, "v1", ""), cfg, nil, nil))
	requireStatus(t, res, protocol.StatusTimedOut, rec)
	// An interrupted hook's one-off container ends at the job's deadline at the latest.
	deadline := time.Now().Add(2 * time.Minute)
	for len(e.containerIDs()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("containers still running after the job timed out before the swap: %v", e.containerIDs())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(res.Error, "untouched") {
		t.Errorf("error = %s", res.Error)
	}
}

func TestDeploy_CancelStopsTheJobAndRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deployV1()

	// The unhealthy backend may take an hour, so verification can end only by the cancel or
	// by the job's own timeout, which would say timed_out: no deadline of the test's context
	// may stand in for the cancel, and the machine's speed does not matter.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := &recorder{onPh: func(p string) {
		if p == protocol.PhaseVerifying {
			time.AfterFunc(time.Second, cancel)
		}
	}}
	cfg := protocol.JobConfig{Services: map[string]protocol.ServiceConfig{"backend": {HealthCheckGracePeriod: protocol.Duration(time.Hour)}}}
	job := e.job(sha(2), threeServices(e.image, "v2", "fail"), cfg, nil, &protocol.Previous{SHA: sha(1)})
	res := e.d.Deploy(ctx, job, rec)
	e.checkAfterJob(job, res, rec)
	requireStatus(t, res, protocol.StatusCancelled, rec)
	if !strings.Contains(res.Error, "cancelled") || !strings.Contains(res.Error, "Rolled back") {
		t.Errorf("error = %s", res.Error)
	}
	e.requireVersion("backend", "v1")
}

func TestDeploy_DataBindMountSurvivesAndDeletedFilesGo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	extra := "    volumes: [\"./data:/data\"]\n"
	writer := svc{name: "app", version: "v1", extra: extra}
	files := map[string]string{
		"compose.yaml":     composeFile(e.image, writer),
		"old.txt":          "to be deleted\n",
		"conf/keep.conf":   "a=1\n",
		"scripts/run.sh@x": "#!/bin/sh\necho hi\n",
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), files, protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if _, err := execOutput("docker", "exec", e.containerIDs()["app"], "sh", "-c", "echo precious > /data/db.bin"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(e.src("scripts/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh lost its executable bit: %v %v", fi, err)
	}

	writer.version = "v2"
	files2 := map[string]string{
		"compose.yaml":   composeFile(e.image, writer),
		"conf/keep.conf": "a=2\n",
		"new.txt":        "new\n",
	}
	res, rec = e.redeploy(files2, protocol.JobConfig{}, nil)
	requireStatus(t, res, protocol.StatusSuccess, rec)

	if b, err := os.ReadFile(e.src("data/db.bin")); err != nil || string(b) != "precious\n" {
		t.Errorf("data/db.bin = %q, %v; want it kept", b, err)
	}
	for _, gone := range []string{"old.txt", "scripts/run.sh", "scripts"} {
		if _, err := os.Lstat(e.src(gone)); !os.IsNotExist(err) {
			t.Errorf("%s still in the working directory (%v)", gone, err)
		}
	}
	if b, _ := os.ReadFile(e.src("conf/keep.conf")); string(b) != "a=2\n" {
		t.Errorf("conf/keep.conf = %q, want the new content", b)
	}
	if out, _ := execOutput("docker", "exec", e.containerIDs()["app"], "cat", "/data/db.bin"); out != "precious\n" {
		t.Errorf("new container sees /data/db.bin = %q", out)
	}
}

func TestDeploy_BuildFailureOrMissingImageLeavesTheRunningVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		backend svc
		files   map[string]string
		want    string
	}{
		{
			name:    "build fails",
			backend: svc{name: "backend", version: "v2", extra: "    build: ./api\n    image: stg-test-broken-build\n"},
			files:   map[string]string{"api/Dockerfile": "FROM %s\nRUN echo compiling && exit 7\n"},
			want:    "build or pull the images",
		},
		{
			name:    "image neither local nor pullable",
			backend: svc{name: "backend", version: "v2", extra: "    image: stagely-test/does-not-exist:never\n"},
			want:    "build or pull the images",
		},
	}
	// With or without pre_deploy hooks, images are built or pulled before anything is
	// stopped, and a failure there runs no hook and changes nothing.
	paths := []struct {
		name  string
		hooks []protocol.Hook
	}{
		{name: "without hooks", hooks: nil},
		{name: "before pre_deploy hooks", hooks: []protocol.Hook{{Service: "web", Command: "true"}}},
	}
	for _, tt := range tests {
		for _, path := range paths {
			t.Run(tt.name+" "+path.name, func(t *testing.T) {
				t.Parallel()
				buildFailureLeavesTheRunningVersion(t, tt.backend, tt.files, tt.want, path.hooks)
			})
		}
	}
}

func buildFailureLeavesTheRunningVersion(t *testing.T, backend svc, extraFiles map[string]string, want string, hooks []protocol.Hook) {
	t.Helper()
	e := newEnv(t)
	before := e.deployV1()

	// The backend gets its image (or build) from the given svc alone.
	compose := strings.Replace(composeFile(e.image, svc{name: "web", version: "v2"}, backend, svc{name: "worker", version: "v1"}),
		"  backend:\n    image: "+e.image+"\n", "  backend:\n", 1)
	files := map[string]string{"compose.yaml": compose, "README.md": "v2\n"}
	for k, v := range extraFiles {
		files[k] = fmt.Sprintf(v, e.image)
	}
	cfg := protocol.JobConfig{Hooks: protocol.Hooks{PreDeploy: hooks}}
	res, rec := e.redeploy(files, cfg, nil)
	requireStatus(t, res, protocol.StatusFailure, rec)
	if !strings.Contains(res.Error, want) || !strings.Contains(res.Error, "untouched") {
		t.Errorf("error = %s", res.Error)
	}
	// The running ones: same IDs, still running, web still on v1 although the commit changes it.
	e.requireUnchanged(before)
	e.requireVersion("web", "v1")
	if b, _ := os.ReadFile(e.src("README.md")); string(b) != "shop\n" {
		t.Errorf("working directory not restored to the running version: README.md = %q", b)
	}
	if slices.Contains(rec.phases, protocol.PhasePreDeploy) {
		t.Errorf("pre_deploy hooks ran after the build failed: phases %v", rec.phases)
	}
}

func TestDeploy_UnsafeTarballIsRefusedBeforeAnythingChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.deployV1()

	job := e.job(sha(2), nil, protocol.JobConfig{}, nil, &protocol.Previous{SHA: sha(1)})
	e.gh.publishRaw(sha(2), repoTarball(t, "acme-shop-x", map[string]string{"../../escape.txt": "boom"}))
	res, rec := e.deploy(ctxFor(t), job)
	requireStatus(t, res, protocol.StatusFailure, rec)
	if !strings.Contains(res.Error, "unsafe tarball") || !strings.Contains(res.Error, "untouched") {
		t.Errorf("error = %s", res.Error)
	}
	e.requireUnchanged(before)
	if _, err := os.Stat(e.src("README.md")); err != nil {
		t.Errorf("working directory damaged: %v", err)
	}
}
