package deployer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/dockertest"
)

// BenchmarkDeployNothingToChange measures the agent deploying, over a running
// multiServiceRepo (a built api, a db with a named volume and a health check, a web), a
// commit that changes nothing compose sees: only the README, outside every build context.
// Each iteration is one whole deploy (fetch, plan, swap, verify); it must plan nothing to
// change and recreate nothing (checked from the job's log). Besides ns/op, read the phases
// (fetch-ms, build-phase-ms, up-ms, verify-ms) and the compose processes it ran (cmds, and
// cmd-<kind>-ms for config, build, up and ps).
func BenchmarkDeployNothingToChange(b *testing.B) {
	img := dockertest.BusyboxImage(b)
	cmds := &commandClock{}
	a := newAgentArm(b, "stg-bench-still", "", compose.NewRunner(compose.RunnerOptions{Observe: cmds.observe}))
	a.filesAt = func(n int) map[string]string {
		files := multiServiceRepo(img, 0)
		files["README.md"] = fmt.Sprintf("shop, commit %d\n", n)
		return files
	}
	a.recreated = ""
	a.deploy(b, 0)
	cmds.reset()
	phases := map[string]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		_, ph := a.deploy(b, i+1)
		for k, v := range ph {
			phases[k] += v
		}
	}
	b.StopTimer()
	reportAgentMetrics(b, phases, cmds)
}
