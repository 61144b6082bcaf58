package deployer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/caddy"
	"github.com/stagely/stagely/agent/caddy/caddytest"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/previewroute"
	"github.com/stagely/stagely/agent/protocol"
)

// previewEnv is a production project, a real Caddy and a Deployer routing previews through it.
type previewEnv struct {
	*env
	caddy  *caddytest.Caddy
	listen string
	router *previewroute.Router
	ask    *httptest.Server
}

func newPreviewEnv(t *testing.T) *previewEnv {
	t.Helper()
	e := &previewEnv{env: newEnv(t), caddy: caddytest.Start(t)}
	e.listen = fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t))
	e.router = e.newRouter(caddy.New(e.caddy.Admin))
	e.d = deployer.New(deployer.Options{DataDir: e.dataDir, DefaultGracePeriod: 30 * time.Second, Previews: e.router})
	return e
}

// newRouter is what an agent start builds: a Router over the records in the data dir.
func (e *previewEnv) newRouter(c *caddy.Client) *previewroute.Router {
	e.t.Helper()
	eng, err := engine.New(os.Getenv("DOCKER_HOST"), false)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := previewroute.New(previewroute.Options{Dir: filepath.Join(e.dataDir, "previews"), Caddy: c, Engine: eng,
		Listen: []string{e.listen}, TLS: caddy.TLSOff})
	if err != nil {
		e.t.Fatal(err)
	}
	if e.ask != nil {
		e.ask.Close()
	}
	e.ask = httptest.NewServer(r)
	e.t.Cleanup(e.ask.Close)
	return r
}

// site is a compose file whose web service serves version on port 8080 (and binds a host
// port, which a preview must drop) and keeps a named volume.
func site(img, version string, hostPort int, extra string) map[string]string {
	return map[string]string{"compose.yaml": fmt.Sprintf(`services:
  web:
    image: %s
    init: true
    environment:
      VERSION: %q
    command: ["sh", "-c", "mkdir -p /www && echo \"serving $$VERSION\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: ["127.0.0.1:%d:8080"]
    volumes: [data:/data]
%svolumes:
  data: {}
`, img, version, hostPort, extra)}
}

// previewJob is sha's DEPLOY of pull request n's preview of e's project.
func (e *previewEnv) previewJob(n int, sha string, files map[string]string, prev *protocol.Previous) protocol.Deploy {
	job := e.job(sha, files, protocol.JobConfig{}, []protocol.Secret{{Key: "TOKEN", Value: "preview-only-secret", Scope: protocol.ScopeGlobal}}, prev)
	job.JobID = fmt.Sprintf("job-pr%d-%s", n, sha[:7])
	job.Project.ComposeProject = previewName(e.project, n)
	job.Preview = &protocol.Preview{Number: n, Routes: []protocol.PreviewRoute{{Host: previewHost(n), Service: "web", Port: 8080}}}
	return job
}

func (e *previewEnv) stopJob(n int) protocol.Deploy {
	return protocol.Deploy{JobID: fmt.Sprintf("job-pr%d-stop", n),
		Project: protocol.Project{ID: "p1", Name: "shop", ComposeProject: previewName(e.project, n)},
		Preview: &protocol.Preview{Number: n, Stop: true}}
}

func previewName(project string, n int) string { return fmt.Sprintf("%s-pr-%d", project, n) }

func previewHost(n int) string { return fmt.Sprintf("web--pr-%d--shop.preview.example.com", n) }

// requireServes polls Caddy until host answers with want in its body.
func (e *previewEnv) requireServes(host, want string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, body, err := caddytest.Get(ctx, e.listen, host, "/")
		cancel()
		if err == nil && code == http.StatusOK && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s through Caddy: %d %q %v, want 200 with %q", host, code, body, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// requireNotRouted checks that Caddy answers 404 for host.
func (e *previewEnv) requireNotRouted(host string) {
	e.t.Helper()
	code, body, err := caddytest.Get(context.Background(), e.listen, host, "/")
	if err != nil || code != http.StatusNotFound {
		e.t.Errorf("%s through Caddy: %d %q %v, want 404", host, code, body, err)
	}
}

func (e *previewEnv) askCode(host string) int {
	e.t.Helper()
	resp, err := http.Get(e.ask.URL + "/?domain=" + host)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// leftovers lists what docker still has of a compose project.
func leftovers(t *testing.T, project string) string {
	t.Helper()
	var out []string
	for _, args := range [][]string{
		{"ps", "-a", "-q", "--filter", "label=com.docker.compose.project=" + project},
		{"network", "ls", "-q", "--filter", "label=com.docker.compose.project=" + project},
		{"volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + project},
	} {
		s, err := execOutput("docker", args...)
		if err != nil {
			t.Fatalf("docker %v: %v", args, err)
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, args[0]+": "+s)
		}
	}
	return strings.Join(out, "; ")
}

func TestPreview_TwoPreviewsServeThroughCaddyAndTearDownWithoutTouchingProduction(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	hostPort := caddytest.FreePort(t)
	for _, n := range []int{1, 2} {
		t.Cleanup(func() { dockertest.Down(t, previewName(e.project, n)) })
	}

	res, rec := e.deploy(ctxFor(t), e.job(sha(1), site(e.image, "production", hostPort, ""), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	prod := e.containerIDs()

	for _, n := range []int{1, 2} {
		res, rec := e.deploy(ctxFor(t), e.previewJob(n, sha(10+n), site(e.image, fmt.Sprintf("pr-%d", n), hostPort, ""), nil))
		requireStatus(t, res, protocol.StatusSuccess, rec)
		if !strings.Contains(rec.text(), previewHost(n)+" -> service web, port 8080") {
			t.Errorf("preview %d's log does not name its route:\n%s", n, rec.text())
		}
	}
	e.requireServes(previewHost(1), "serving pr-1")
	e.requireServes(previewHost(2), "serving pr-2")
	e.requireNotRouted("web--pr-3--shop.preview.example.com")
	code, body, err := caddytest.Get(context.Background(), fmt.Sprintf("127.0.0.1:%d", hostPort), "localhost", "/")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "serving production") {
		t.Errorf("production's host port answers %d %q %v, want production", code, body, err)
	}
	if out, _ := execOutput("docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+previewName(e.project, 1), "--filter", "publish=8080"); strings.TrimSpace(out) != "" {
		t.Errorf("preview 1 publishes a host port: %s", out)
	}
	if got := e.askCode(previewHost(1)); got != http.StatusOK {
		t.Errorf("ask for a live preview's host = %d, want 200", got)
	}
	if got := e.askCode("web--pr-3--shop.preview.example.com"); got != http.StatusNotFound {
		t.Errorf("ask for an unknown host = %d, want 404", got)
	}

	// A push to preview 1 recreates its container, on a new address: the route follows.
	res, rec = e.deploy(ctxFor(t), e.previewJob(1, sha(13), site(e.image, "pr-1 again", hostPort, ""), &protocol.Previous{SHA: sha(11)}))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	e.requireServes(previewHost(1), "serving pr-1 again")

	// The teardown needs no source: remove the working directory first.
	if err := os.RemoveAll(filepath.Join(e.dataDir, "projects", previewName(e.project, 1), "src")); err != nil {
		t.Fatal(err)
	}
	res, rec = e.deploy(ctxFor(t), e.stopJob(1))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if left := leftovers(t, previewName(e.project, 1)); left != "" {
		t.Errorf("preview 1 left behind %s", left)
	}
	for _, f := range []string{filepath.Join("projects", previewName(e.project, 1)), filepath.Join("previews", previewName(e.project, 1)+".json")} {
		if _, err := os.Stat(filepath.Join(e.dataDir, f)); !os.IsNotExist(err) {
			t.Errorf("preview 1 left %s behind (%v)", f, err)
		}
	}
	e.requireNotRouted(previewHost(1))
	if got := e.askCode(previewHost(1)); got != http.StatusNotFound {
		t.Errorf("ask for a stopped preview's host = %d, want 404", got)
	}
	e.requireServes(previewHost(2), "serving pr-2")
	e.requireUnchanged(prod)
	if left := leftovers(t, e.project); !strings.Contains(left, "volume") {
		t.Errorf("production lost its volume: %q", left)
	}

	// Stopping again finds nothing to do and succeeds.
	res, rec = e.deploy(ctxFor(t), e.stopJob(1))
	requireStatus(t, res, protocol.StatusSuccess, rec)
}

func TestPreview_RoutesComeBackAfterCaddyAndAgentRestart(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 4)) })
	res, rec := e.deploy(ctxFor(t), e.previewJob(4, sha(4), site(e.image, "pr-4", caddytest.FreePort(t), ""), nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	e.requireServes(previewHost(4), "serving pr-4")

	e.caddy.Restart(t)
	// The restarted Caddy has only its own config: the agent's server is gone with its listener.
	if code, _, err := caddytest.Get(context.Background(), e.listen, previewHost(4), "/"); err == nil {
		t.Fatalf("a restarted Caddy answered %d before the agent synced", code)
	}
	// A new agent process reads its records and syncs them into Caddy.
	r := e.newRouter(caddy.New(e.caddy.Admin))
	if err := r.Sync(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	e.requireServes(previewHost(4), "serving pr-4")
	if got := e.askCode(previewHost(4)); got != http.StatusOK {
		t.Errorf("ask after the agent restart = %d, want 200", got)
	}

	// Run's first sync happens at once; a restarted Caddy gets the routes back without a job.
	e.caddy.Restart(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, time.Second)
	}()
	e.requireServes(previewHost(4), "serving pr-4")
	cancel()
	<-done

	// An agent killed during the teardown does it again when it starts.
	rec = &recorder{}
	res = e.d.Recover(ctxFor(t), e.stopJob(4), protocol.PhaseDeploying, rec)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if left := leftovers(t, previewName(e.project, 4)); left != "" {
		t.Errorf("the recovered teardown left %s", left)
	}
	e.requireNotRouted(previewHost(4))
}

func TestPreview_RefusesAComposeFileThatWouldShareWithProduction(t *testing.T) {
	t.Parallel()
	img := dockertest.BusyboxImage(t)
	cases := []struct {
		name  string
		files map[string]string
		route string
		want  string
	}{
		{"container_name", site(img, "v", 18080, "    container_name: shop-web\n"), "web",
			"service web sets container_name \"shop-web\", which would collide with production"},
		{"named volume", map[string]string{"compose.yaml": strings.Replace(site(img, "v", 18080, "")["compose.yaml"], "  data: {}", "  data: {name: shop-data}", 1)}, "web",
			"volume data is named \"shop-data\" in the compose file, so the preview would share it with production"},
		{"network_mode host", site(img, "v", 18080, "    network_mode: host\n"), "web",
			"service web uses network_mode: host, so its ports would collide with production's"},
		{"route to a missing service", site(img, "v", 18080, ""), "api",
			"host web--pr-5--shop.preview.example.com is routed to service api, which the compose file lacks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newPreviewEnv(t)
			t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 5)) })
			job := e.previewJob(5, sha(5), tc.files, nil)
			job.Preview.Routes[0].Service = tc.route
			res, rec := e.deploy(ctxFor(t), job)
			requireStatus(t, res, protocol.StatusFailure, rec)
			if !strings.Contains(res.Error, "preview of pull request #5: "+tc.want) {
				t.Errorf("error = %q, want it to say %q", res.Error, tc.want)
			}
			if left := leftovers(t, previewName(e.project, 5)); left != "" {
				t.Errorf("a refused preview created %s", left)
			}
		})
	}
}

func TestPreview_FailsWithHowToInstallCaddyWhenCaddyIsUnreachable(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 6)) })
	e.d = deployer.New(deployer.Options{DataDir: e.dataDir, Previews: e.newRouter(caddy.New(fmt.Sprintf("http://127.0.0.1:%d", caddytest.FreePort(t))))})
	res, rec := e.deploy(ctxFor(t), e.previewJob(6, sha(6), site(e.image, "v", 18080, ""), nil))
	requireStatus(t, res, protocol.StatusFailure, rec)
	for _, want := range []string{"The preview of pull request #6 was not deployed", "is not reachable", "--previews option", "STAGELY_CADDY_ADMIN", "Nothing was started"} {
		if !strings.Contains(res.Error, want) {
			t.Errorf("error %q lacks %q", res.Error, want)
		}
	}
	if left := leftovers(t, previewName(e.project, 6)); left != "" {
		t.Errorf("created %s", left)
	}
}

func TestPreview_TeardownGoesOnWhenCaddyIsDownAndTheRouteGoesWhenItIsBack(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 9)) })
	res, rec := e.deploy(ctxFor(t), e.previewJob(9, sha(9), site(e.image, "pr-9", caddytest.FreePort(t), ""), nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	e.requireServes(previewHost(9), "serving pr-9")

	e.caddy.Stop(t)
	res, rec = e.deploy(ctxFor(t), e.stopJob(9))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if !strings.Contains(res.Error, "Caddy could not be told yet") {
		t.Errorf("result error = %q, want it to say Caddy was not told", res.Error)
	}
	if left := leftovers(t, previewName(e.project, 9)); left != "" {
		t.Errorf("preview 9 left behind %s", left)
	}
	if got := e.askCode(previewHost(9)); got != http.StatusNotFound {
		t.Errorf("ask for the stopped preview = %d, want 404", got)
	}

	e.caddy.Restart(t)
	if err := e.router.Sync(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	e.requireNotRouted(previewHost(9))
}

func TestPreview_BuildsItsOwnImageWhenTheComposeFileNamesOne(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 11)) })
	shared := e.project + "-shared:latest"
	t.Cleanup(func() { _, _ = execOutput("docker", "image", "rm", "-f", shared, previewName(e.project, 11)+"-web") })
	files := func(version string) map[string]string {
		return map[string]string{
			"Dockerfile":   fmt.Sprintf("FROM %s\nRUN echo %s > /version\n", e.image, version),
			"compose.yaml": fmt.Sprintf("services:\n  web:\n    build: .\n    image: %s\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n", shared),
		}
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), files("production"), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	imageID := func(ref string) string {
		out, err := execOutput("docker", "image", "inspect", "--format", "{{.Id}}", ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		return strings.TrimSpace(out)
	}
	prodImage := imageID(shared)

	job := e.previewJob(11, sha(11), files("preview"), nil)
	job.Preview.Routes = nil
	res, rec = e.deploy(ctxFor(t), job)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if got := imageID(shared); got != prodImage {
		t.Errorf("the preview's build retagged production's image %s: %s -> %s", shared, prodImage, got)
	}
	if got := imageID(previewName(e.project, 11) + "-web"); got == prodImage {
		t.Error("the preview runs production's image")
	}
}

func TestPreview_RefusesToShareProductionDataUnlessPreviewSharedListsIt(t *testing.T) {
	t.Parallel()
	img := dockertest.BusyboxImage(t)
	hostDir := t.TempDir()
	external := func(name string) map[string]string {
		return map[string]string{"compose.yaml": strings.Replace(site(img, "v", 18080, "")["compose.yaml"], "  data: {}", "  data: {external: true, name: "+name+"}", 1)}
	}
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"external volume", external("prod-pgdata"),
			`volume data is external ("prod-pgdata"), so the preview would share prod-pgdata with production`},
		{"network_mode container", site(img, "v", 18080, "    network_mode: container:prod-db\n"),
			"service web uses network_mode: container:prod-db, a container outside the preview, so the preview would share prod-db with production"},
		{"volumes_from container", site(img, "v", 18080, "    volumes_from: [\"container:prod-db\"]\n"),
			"service web uses volumes_from: container:prod-db, a container outside the preview"},
		{"writable host bind", map[string]string{"compose.yaml": strings.Replace(site(img, "v", 18080, "")["compose.yaml"], "volumes: [data:/data]", "volumes: [data:/data, "+hostDir+":/host]", 1)},
			"service web binds the host path " + hostDir + " writable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newPreviewEnv(t)
			t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 5)) })
			res, rec := e.deploy(ctxFor(t), e.previewJob(5, sha(5), tc.files, nil))
			requireStatus(t, res, protocol.StatusFailure, rec)
			for _, want := range []string{"preview of pull request #5: " + tc.want, "preview.shared"} {
				if !strings.Contains(res.Error, want) {
					t.Errorf("error = %q, want it to say %q", res.Error, want)
				}
			}
			if left := leftovers(t, previewName(e.project, 5)); left != "" {
				t.Errorf("a refused preview created %s", left)
			}
		})
	}

	t.Run("listed in preview.shared, or bound read-only", func(t *testing.T) {
		t.Parallel()
		e := newPreviewEnv(t)
		vol := e.project + "-pgdata"
		if out, err := execOutput("docker", "volume", "create", vol); err != nil {
			t.Fatalf("docker volume create: %v %s", err, out)
		}
		t.Cleanup(func() {
			dockertest.Down(t, previewName(e.project, 5))
			_, _ = execOutput("docker", "volume", "rm", "-f", vol)
		})
		files := external(vol)
		files["compose.yaml"] = strings.Replace(files["compose.yaml"], "volumes: [data:/data]", "volumes: [data:/data, "+hostDir+":/host:ro]", 1)
		job := e.previewJob(5, sha(5), files, nil)
		job.Preview.Shared = []string{vol}
		res, rec := e.deploy(ctxFor(t), job)
		requireStatus(t, res, protocol.StatusSuccess, rec)
		e.requireServes(previewHost(5), "serving v")
	})
}

func TestPreview_ServiceThatRunsAnImageAnotherServiceBuildsRunsThePreviewsBuild(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 12)) })
	shared := e.project + "-myapp"
	t.Cleanup(func() { _, _ = execOutput("docker", "image", "rm", "-f", shared, previewName(e.project, 12)+"-web") })
	files := func(version string) map[string]string {
		return map[string]string{
			"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo %s > /version\n", e.image, version),
			"compose.yaml": fmt.Sprintf("services:\n  web:\n    build: .\n    image: %s\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n"+
				"  worker:\n    image: %s\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n", shared, shared),
		}
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), files("production"), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)

	job := e.previewJob(12, sha(12), files("preview"), nil)
	job.Preview.Routes = nil
	res, rec = e.deploy(ctxFor(t), job)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	out, err := execOutput("docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+previewName(e.project, 12), "--filter", "label=com.docker.compose.service=worker")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("the preview's worker container: %q %v", out, err)
	}
	version, err := execOutput("docker", "exec", strings.TrimSpace(out), "cat", "/version")
	if err != nil || strings.TrimSpace(version) != "preview" {
		t.Errorf("the preview's worker runs the build of %q (%v), want the preview's own", strings.TrimSpace(version), err)
	}
}

func TestPreview_TeardownRemovesTheImagesThePreviewBuiltAndNoneOfProductions(t *testing.T) {
	t.Parallel()
	e := newPreviewEnv(t)
	t.Cleanup(func() { dockertest.Down(t, previewName(e.project, 14)) })
	prodImage := e.project + "-web"
	t.Cleanup(func() { _, _ = execOutput("docker", "image", "rm", "-f", prodImage, previewName(e.project, 14)+"-web") })
	files := func(version string) map[string]string {
		return map[string]string{
			"Dockerfile":   fmt.Sprintf("FROM %s\nRUN echo %s > /version\n", e.image, version),
			"compose.yaml": "services:\n  web:\n    build: .\n    init: true\n    command: [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n",
		}
	}
	res, rec := e.deploy(ctxFor(t), e.job(sha(1), files("production"), protocol.JobConfig{}, nil, nil))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	prod := e.containerIDs()
	job := e.previewJob(14, sha(14), files("preview"), nil)
	job.Preview.Routes = nil
	res, rec = e.deploy(ctxFor(t), job)
	requireStatus(t, res, protocol.StatusSuccess, rec)
	previewImage := previewName(e.project, 14) + "-web"
	if _, err := execOutput("docker", "image", "inspect", previewImage); err != nil {
		t.Fatalf("the preview built no image %s: %v", previewImage, err)
	}

	res, rec = e.deploy(ctxFor(t), e.stopJob(14))
	requireStatus(t, res, protocol.StatusSuccess, rec)
	if _, err := execOutput("docker", "image", "inspect", previewImage); err == nil {
		t.Errorf("the teardown left the preview's image %s", previewImage)
	}
	if _, err := execOutput("docker", "image", "inspect", prodImage); err != nil {
		t.Errorf("the teardown removed production's image %s: %v", prodImage, err)
	}
	e.requireUnchanged(prod)
}
