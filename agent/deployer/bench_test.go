package deployer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/internal/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

// BenchmarkDeployOverhead compares a bare `docker compose up -d` with the agent's whole
// deploy (fetch, sync, override, build/pull check, up, verify) of the same three-service
// project, each iteration changing one service's environment so exactly one container is
// recreated.
func BenchmarkDeployOverhead(b *testing.B) {
	img := dockertest.BusyboxImage(b)
	ctx := context.Background()

	b.Run("bare", func(b *testing.B) {
		project := dockertest.ProjectName("stg-bench-bare")
		b.Cleanup(func() { dockertest.Down(b, project) })
		dir := b.TempDir()
		file := filepath.Join(dir, "compose.yaml")
		up := func(version string) {
			yml := composeFile(img, svc{name: "web", version: "v1"}, svc{name: "backend", version: version}, svc{name: "worker", version: "v1"})
			if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
				b.Fatal(err)
			}
			if out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "-f", file, "up", "-d", "--remove-orphans").CombinedOutput(); err != nil {
				b.Fatalf("up: %v: %s", err, out)
			}
		}
		up("v0")
		b.ResetTimer()
		for i := range b.N {
			up(fmt.Sprintf("v%d", i+1))
		}
	})

	b.Run("agent", func(b *testing.B) {
		project := dockertest.ProjectName("stg-bench-agent")
		b.Cleanup(func() { dockertest.Down(b, project) })
		gh := newFakeGitHub(b)
		d := deployer.New(deployer.Options{DataDir: b.TempDir()})
		files := map[string]string{"compose.yaml": composeFile(img, svc{name: "web", version: "v1"}, svc{name: "backend", version: "v1"}, svc{name: "worker", version: "v1"})}
		deploy := func(n int) {
			s := sha(n)
			gh.publish(b, s, files)
			job := protocol.Deploy{
				JobID: fmt.Sprintf("bench-%d", n), Project: protocol.Project{ComposeProject: project}, Repo: "acme/shop", SHA: s,
				Source:  protocol.Source{TarballURL: gh.url(s), Token: testToken},
				Secrets: []protocol.Secret{{Key: "BUILD", Value: fmt.Sprintf("value-%d", n), Scope: "backend"}},
			}
			if res := d.Deploy(ctx, job, &recorder{}); res.Status != protocol.StatusSuccess {
				b.Fatalf("deploy: %s: %s", res.Status, res.Error)
			}
		}
		deploy(0)
		b.ResetTimer()
		for i := range b.N {
			deploy(i + 1)
		}
	})
}
