package deployer_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

// A redeploy reads the compose file while the build step runs; these tests pin what that
// overlap must not change.

func TestDeploy_ServiceAddedOnARedeployGetsItsSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secrets := []protocol.Secret{{Key: "SHARED", Value: "global-value-1", Scope: protocol.ScopeGlobal}, {Key: "QUEUE", Value: "worker-only-1", Scope: "worker"}}
	two := map[string]string{"compose.yaml": composeFile(e.image, svc{name: "web", version: "v1"}, svc{name: "backend", version: "v1"})}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), two, protocol.JobConfig{}, secrets, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	before := e.containerIDs()

	res, rec = e.redeploy(threeServices(e.image, "v1", ""), protocol.JobConfig{}, secrets)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	after := e.containerIDs()
	for _, s := range []string{"web", "backend"} {
		if before[s] != after[s] {
			t.Errorf("%s was recreated (%s -> %s)", s, before[s], after[s])
		}
	}
	env := dockertest.ContainerEnv(t, after["worker"])
	if env["SHARED"] != "global-value-1" || env["QUEUE"] != "worker-only-1" {
		t.Errorf("new worker's env = %v, want its secrets", env)
	}
}

func TestDeploy_IgnoredServiceIsLeftAloneOnARedeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.deployV1()

	files := map[string]string{"compose.yaml": composeFile(e.image, svc{name: "web", version: "v1"}, svc{name: "backend", version: "v2"}, svc{name: "worker", version: "v2"})}
	cfg := protocol.JobConfig{Services: map[string]protocol.ServiceConfig{"worker": {Ignore: true}}}
	res, rec := e.redeploy(files, cfg, nil)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	after := e.containerIDs()
	if before["worker"] != after["worker"] || before["web"] != after["web"] {
		t.Errorf("worker or web recreated: %v -> %v", before, after)
	}
	if before["backend"] == after["backend"] {
		t.Error("backend kept its container; want it recreated with v2")
	}
	var got []string
	for _, s := range res.Services {
		got = append(got, s.Name+" "+s.State+" "+s.Change)
	}
	if want := "[backend running recreate web running unchanged worker running ignored]"; fmt.Sprint(got) != want {
		t.Errorf("result services = %v, want %s", got, want)
	}
}

func TestDeploy_BrokenComposeFileOnARedeployLeavesTheRunningVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.deployV1()

	files := map[string]string{"compose.yaml": composeFile(e.image, svc{name: "web", version: "v2"}) + "  backend:\n    image: [unclosed\n"}
	res, rec := e.redeploy(files, protocol.JobConfig{}, nil)
	requireStatus(t, res, protocol.StatusFailure, rec)
	if !strings.Contains(res.Error, "read the compose file") || !strings.Contains(res.Error, "untouched") {
		t.Errorf("error = %s, want the compose file's problem and an untouched version", res.Error)
	}
	e.requireUnchanged(before)
}
