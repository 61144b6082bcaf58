package deploy_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// TestDispatch_IgnoredServicesAreCreatedOnTheFirstDeployOnly: `ignore: true` leaves a service
// alone during updates; a project's first deploy has nothing to leave alone, so it creates the
// service once (Kamal's accessories), and every later deploy leaves it be.
func TestDispatch_IgnoredServicesAreCreatedOnTheFirstDeployOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.idleAgent("box")
	p, _ := e.project(&a)
	files := map[string][]byte{
		"compose.yaml": []byte("services:\n  web:\n    image: busybox\n  db:\n    image: busybox\n"),
		"stagely.yaml": []byte("services:\n  db:\n    ignore: true\n"),
	}
	first := e.commitFiles(p, files)
	e.deploy(a, p, first, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	files["web.txt"] = []byte("v2")
	second := e.commitFiles(p, files)
	e.deploy(a, p, second, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})

	jobs := e.hub.jobs()
	if len(jobs) != 2 {
		t.Fatalf("%d jobs dispatched, want 2", len(jobs))
	}
	for i, want := range []bool{false, true} {
		if got := jobs[i].Config.Services["db"].Ignore; got != want {
			t.Errorf("deploy %d sent db with ignore=%v, want %v", i+1, got, want)
		}
	}
	if jobs[1].Previous == nil || !jobs[1].Previous.Config.Services["db"].Ignore {
		t.Errorf("the second deploy's previous config lost ignore: %+v", jobs[1].Previous)
	}
	// The first deployment keeps its configuration as written.
	d, err := e.st.DeploymentByID(e.ctx, e.latest(p).ID-1)
	if err != nil {
		t.Fatal(err)
	}
	var stored protocol.JobConfig
	if err := json.Unmarshal(d.Config, &stored); err != nil || !stored.Services["db"].Ignore {
		t.Fatalf("stored config of the first deploy %s (%v): ignore lost", d.Config, err)
	}
}
