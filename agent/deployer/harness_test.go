package deployer_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/protocol"
)

const testToken = "ghs_testinstallationtoken0123456789"

// fakeGitHub serves tarballs the way GitHub does: the API host checks the token and
// answers 302 to a download URL on another host, which must not see the token.
type fakeGitHub struct {
	api, download *httptest.Server

	mu        sync.Mutex
	tarballs  map[string][]byte
	leaked    bool
	apiBadTok bool
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	g := &fakeGitHub{tarballs: map[string][]byte{}}
	g.download = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if r.Header.Get("Authorization") != "" {
			g.leaked = true
		}
		tb, ok := g.tarballs[strings.TrimPrefix(r.URL.Path, "/dl/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-gzip")
		_, _ = w.Write(tb)
	}))
	// GitHub's download host differs from the API host; localhost vs 127.0.0.1 differ the same way.
	dl := strings.Replace(g.download.URL, "127.0.0.1", "localhost", 1)
	g.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			g.mu.Lock()
			g.apiBadTok = true
			g.mu.Unlock()
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		sha := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		http.Redirect(w, r, dl+"/dl/"+sha, http.StatusFound)
	}))
	t.Cleanup(g.api.Close)
	t.Cleanup(g.download.Close)
	return g
}

func (g *fakeGitHub) url(sha string) string {
	return g.api.URL + "/repos/acme/shop/tarball/" + sha
}

// publish stores the repository tree files (path -> content; a path ending in "@x" is
// executable) as the tarball of sha.
func (g *fakeGitHub) publish(t testing.TB, sha string, files map[string]string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tarballs[sha] = repoTarball(t, "acme-shop-"+sha[:7], files)
}

func (g *fakeGitHub) publishRaw(sha string, tb []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tarballs[sha] = tb
}

func repoTarball(t testing.TB, top string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "sha"}}))
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o755}))
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		name := n
		if s, ok := strings.CutSuffix(n, "@x"); ok {
			name, mode = s, 0o755
		}
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + name, Mode: mode, Size: int64(len(files[n]))}))
		_, err := tw.Write([]byte(files[n]))
		must(err)
	}
	must(tw.Close())
	must(gz.Close())
	return buf.Bytes()
}

// recorder collects what a deploy reports.
type recorder struct {
	mu     sync.Mutex
	phases []string
	lines  []string
	plans  []protocol.Plan
	// planAt is how many phases had begun when the plan came.
	planAt int
	onPh   func(string)
}

func (r *recorder) Plan(p protocol.Plan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plans = append(r.plans, p)
	r.planAt = len(r.phases)
}

// plan returns the one plan the job reported, failing the test unless there was exactly one.
func (r *recorder) plan(t *testing.T) protocol.Plan {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.plans) != 1 {
		t.Fatalf("job reported %d plans, want 1: %+v", len(r.plans), r.plans)
	}
	return r.plans[0]
}

func (r *recorder) Phase(p string) {
	r.mu.Lock()
	r.phases = append(r.phases, p)
	f := r.onPh
	r.mu.Unlock()
	if f != nil {
		f(p)
	}
}

func (r *recorder) Log(stream, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, stream+": "+line)
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// env is one test's world: a compose project, a data dir, a fake GitHub and a Deployer.
type env struct {
	t       *testing.T
	project string
	dataDir string
	gh      *fakeGitHub
	d       *deployer.Deployer
	image   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		t:       t,
		project: dockertest.ProjectName("stg-" + strings.ToLower(t.Name())[:min(len(t.Name()), 20)]),
		dataDir: t.TempDir(),
		gh:      newFakeGitHub(t),
		image:   dockertest.BusyboxImage(t),
	}
	t.Cleanup(func() { dockertest.Down(t, e.project) })
	e.d = deployer.New(deployer.Options{DataDir: e.dataDir, DefaultGracePeriod: 30 * time.Second})
	return e
}

// job builds a DEPLOY of sha, publishing files as its tarball.
func (e *env) job(sha string, files map[string]string, cfg protocol.JobConfig, secrets []protocol.Secret, prev *protocol.Previous) protocol.Deploy {
	e.gh.publish(e.t, sha, files)
	return protocol.Deploy{
		JobID:   "job-" + sha[:7],
		Project: protocol.Project{ID: "p1", Name: "shop", ComposeProject: e.project},
		Repo:    "acme/shop", Ref: "refs/heads/main", SHA: sha,
		Source:   protocol.Source{TarballURL: e.gh.url(sha), Token: testToken},
		Config:   cfg,
		Secrets:  secrets,
		Previous: prev,
	}
}

// deploy runs the job and checks what every job must leave behind: no override, no
// secret value in any file under the data dir or in any log line, no token leak.
func (e *env) deploy(ctx context.Context, job protocol.Deploy) (protocol.JobResult, *recorder) {
	e.t.Helper()
	rec := &recorder{}
	res := e.d.Deploy(ctx, job, rec)
	e.checkAfterJob(job, res, rec)
	return res, rec
}

// deployV1 deploys sha(1), threeServices at v1 without health checks: the running version
// a test's next deploy replaces. It fails the test unless the deploy succeeds and returns
// the running containers by service.
func (e *env) deployV1() map[string]string {
	e.t.Helper()
	res, rec := e.deploy(ctxFor(e.t), e.job(sha(1), threeServices(e.image, "v1", ""), protocol.JobConfig{}, nil, nil))
	requireStatus(e.t, res, protocol.StatusSuccess, rec)
	return e.containerIDs()
}

// redeploy deploys files as sha(2) over sha(1) (see deploy).
func (e *env) redeploy(files map[string]string, cfg protocol.JobConfig, secrets []protocol.Secret) (protocol.JobResult, *recorder) {
	e.t.Helper()
	return e.deploy(ctxFor(e.t), e.job(sha(2), files, cfg, secrets, &protocol.Previous{SHA: sha(1)}))
}

// requireUnchanged reports an error unless the running containers are still before's.
func (e *env) requireUnchanged(before map[string]string) {
	e.t.Helper()
	if after := e.containerIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		e.t.Errorf("containers changed: %v -> %v", before, after)
	}
}

// requireVersion reports an error unless the running container of service has VERSION want.
func (e *env) requireVersion(service, want string) {
	e.t.Helper()
	if got := dockertest.ContainerEnv(e.t, e.containerIDs()[service])["VERSION"]; got != want {
		e.t.Errorf("%s runs %q, want %q", service, got, want)
	}
}

func (e *env) checkAfterJob(job protocol.Deploy, res protocol.JobResult, rec *recorder) {
	e.t.Helper()
	if res.JobID != job.JobID || res.Status == "" {
		e.t.Errorf("result lacks job id or status: %+v", res)
	}
	logs := rec.text()
	for _, s := range job.Secrets {
		for _, part := range secretParts(s.Value) {
			if strings.Contains(logs, part) {
				e.t.Errorf("secret %s appears in the job log", s.Key)
			}
			if strings.Contains(res.Error, part) {
				e.t.Errorf("secret %s appears in the result error", s.Key)
			}
		}
	}
	err := filepath.WalkDir(e.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if strings.Contains(path, string(filepath.Separator)+"run"+string(filepath.Separator)) {
			e.t.Errorf("override %s left behind", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range job.Secrets {
			for _, part := range secretParts(s.Value) {
				if bytes.Contains(b, []byte(part)) {
					e.t.Errorf("secret %s found on disk in %s", s.Key, path)
				}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Errorf("walk data dir: %v", err)
	}
	e.gh.mu.Lock()
	defer e.gh.mu.Unlock()
	if e.gh.leaked {
		e.t.Error("the token reached the download host")
	}
}

func secretParts(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if len(l) >= 4 {
			out = append(out, l)
		}
	}
	return out
}

// containerIDs returns service -> container ID of the running project.
func (e *env) containerIDs() map[string]string {
	e.t.Helper()
	out, err := execOutput("docker", "ps", "-a", "--no-trunc", "--filter", "label=com.docker.compose.project="+e.project,
		"--format", `{{.Label "com.docker.compose.service"}} {{.ID}} {{.State}}`)
	if err != nil {
		e.t.Fatalf("docker ps: %v", err)
	}
	ids := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "running" {
			ids[f[0]] = f[1]
		}
	}
	return ids
}

func (e *env) src(rel string) string {
	return filepath.Join(e.dataDir, "projects", e.project, "src", rel)
}

func requireStatus(t *testing.T, res protocol.JobResult, want string, rec *recorder) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("status = %s, want %s; error: %s\nlog:\n%s", res.Status, want, res.Error, rec.text())
	}
}

func sha(n int) string { return fmt.Sprintf("%040x", 0xabc0000+n) }

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
