package deployer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/dockertest"
)

// multiServiceRepo is a project like the ones users hold: a db that keeps a named volume and
// is healthy only once it answers over HTTP, an api built from a Dockerfile that waits for
// the db to be healthy, and a web in front. Commit n changes the api's Dockerfile, so a
// redeploy builds a new api image and recreates the api alone.
func multiServiceRepo(img string, n int) map[string]string {
	return map[string]string{
		"compose.yaml": fmt.Sprintf(`services:
  db:
    image: %[1]s
    init: true
    volumes: [dbdata:/www]
    command: ["sh", "-c", "echo ok > /www/v; exec httpd -f -p 8080 -h /www"]
    healthcheck: {test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/v"], interval: 1s, timeout: 2s, retries: 30}
  api:
    build: ./api
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
    depends_on: {db: {condition: service_healthy}}
  web:
    image: %[1]s
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
    depends_on: [api]
volumes:
  dbdata:
`, img),
		"api/Dockerfile": fmt.Sprintf("FROM %s\nRUN echo build %d > /build\n", img, n),
		"README.md":      "shop\n",
	}
}

// BenchmarkDeployMultiService compares, side by side in each iteration, a bare
// `docker compose up -d --build --wait` with the agent's whole deploy of the same change to
// multiServiceRepo (a new api image; both arms check that only the api was recreated).
// Read x-bare (agent / bare, the target is at most 1.10), bare-ms and agent-ms; still-ms is
// the agent deploying, on a third project, a commit that changes no service (a README),
// whose plan has nothing to change.
func BenchmarkDeployMultiService(b *testing.B) {
	img := dockertest.BusyboxImage(b)
	ctx := context.Background()

	bareProject := dockertest.ProjectName("stg-benchm-bare")
	b.Cleanup(func() { dockertest.Down(b, bareProject) })
	dir := b.TempDir()
	bare := func(n int) time.Duration {
		for name, content := range multiServiceRepo(img, n) {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, "docker", "compose", "-p", bareProject, "-f", filepath.Join(dir, "compose.yaml"),
			"up", "-d", "--build", "--wait", "--remove-orphans")
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("up: %v: %s", err, out)
		}
		checkRecreated(b, n, strings.Split(string(out), "\n"), bareProject, "api")
		return took
	}
	agent := newAgentArm(b, "stg-benchm-agent", "", compose.NewRunner(compose.RunnerOptions{}))
	agent.filesAt = func(n int) map[string]string { return multiServiceRepo(img, n) }
	agent.recreated = "api"
	still := newAgentArm(b, "stg-benchm-still", "", compose.NewRunner(compose.RunnerOptions{}))
	still.filesAt = func(n int) map[string]string {
		files := multiServiceRepo(img, 0)
		files["README.md"] = fmt.Sprintf("shop, commit %d\n", n)
		return files
	}
	still.recreated = ""

	// The first deploy of each arm creates its containers and volume; only redeploys count.
	bare(0)
	agent.deploy(b, 0)
	still.deploy(b, 0)
	var tBare, tAgent, tStill time.Duration
	b.ResetTimer()
	for i := range b.N {
		tBare += bare(i + 1)
		took, _ := agent.deploy(b, i+1)
		tAgent += took
		took, _ = still.deploy(b, i+1)
		tStill += took
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(tBare), "bare-ms")
	b.ReportMetric(per(tAgent), "agent-ms")
	b.ReportMetric(float64(tAgent)/float64(tBare), "x-bare")
	b.ReportMetric(per(tStill), "still-ms")
}
