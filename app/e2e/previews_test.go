package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/caddy/caddytest"
	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// previewYAML is the sample repository's stagely.yaml with previews: web gets a URL under
// preview.test, and two previews run at once.
const previewYAML = `version: "1.0"
deployment:
  timeout: 120s
services:
  web:
    health_check_grace_period: 30s
preview:
  domain: preview.test
  services:
    web: 8080
  max_previews: 2
`

// previewStack is one server, agent and Caddy the preview tests share: every step of a pull
// request's life runs on them in turn, as a user's would.
type previewStack struct {
	*stack
	caddy  *caddytest.Caddy
	listen string // the agent's preview server in Caddy, plain HTTP on loopback
	image  string
}

func newPreviewStack(t testing.TB) *previewStack {
	t.Helper()
	c := caddytest.Start(t)
	s := newStack(t, stackOptions{noAgent: true})
	ps := &previewStack{stack: s, caddy: c, listen: fmt.Sprintf("127.0.0.1:%d", caddytest.FreePort(t)), image: dockertest.BusyboxImage(t)}
	s.agentEnv = append(s.agentEnv,
		"STAGELY_CADDY_ADMIN="+c.Admin,
		"STAGELY_PREVIEW_LISTEN="+ps.listen,
		"STAGELY_PREVIEW_TLS=off",
	)
	s.startAgent()
	if err := s.st.SetProjectPreviews(s.ctx, s.project.UserID, s.project.ID, true, nil); err != nil {
		t.Fatal(err)
	}
	return ps
}

// files is the sample repository serving page, with a named volume on its worker (so a
// teardown has one to remove) and previews on.
func (ps *previewStack) files(page string) map[string][]byte { return ps.filesOn(page, freePort(ps.t)) }

// filesOn is files with web published on host port port (which a preview drops).
func (ps *previewStack) filesOn(page string, port int) map[string][]byte {
	files := samplerepo.Repo{Image: ps.image, Port: port, Page: page, StagelyYAML: previewYAML}.Files()
	files["compose.yaml"] = append(files["compose.yaml"], "    volumes: [\"cache:/cache\"]\nvolumes:\n  cache: {}\n"...)
	return files
}

// openPR commits files to branch in repo (the base repository, or a fork) and sends the
// pull_request event; it returns the head SHA.
func (ps *previewStack) openPR(action string, pr githubsim.PullRequest, files map[string][]byte) string {
	ps.t.Helper()
	repo := ps.repo
	if pr.HeadRepo != "" {
		repo = pr.HeadRepo
	}
	sha, err := ps.sim.Commit(ps.ctx, repo, pr.Head, files, fmt.Sprintf("pull request #%d", pr.Number))
	if err != nil {
		ps.t.Fatal(err)
	}
	ps.sendPR(action, pr)
	return sha
}

func (ps *previewStack) sendPR(action string, pr githubsim.PullRequest) {
	ps.t.Helper()
	if _, err := ps.sim.SendPullRequest(ps.ctx, ps.repo, action, pr); err != nil {
		ps.t.Fatalf("pull_request %s #%d: %v", action, pr.Number, err)
	}
}

// host is the preview host name of pull request n's web service.
func host(n int) string { return fmt.Sprintf("web--pr-%d--web.preview.test", n) }

// wantServing waits until Caddy answers page for pull request n's host.
func (ps *previewStack) wantServing(n int, page string) {
	ps.t.Helper()
	var code int
	var body string
	var err error
	waitFor(ps.t, time.Minute, fmt.Sprintf("%s to answer %q", host(n), page), func() bool {
		code, body, err = caddytest.Get(ps.ctx, ps.listen, host(n), "/")
		return err == nil && code == http.StatusOK && body == page
	})
}

// wantPreviewLive waits for the n-th preview check run on sha and fails unless it succeeded.
func (ps *previewStack) wantPreviewLive(sha string, n int, what string) githubsim.CheckRun {
	ps.t.Helper()
	run := ps.namedCheck("Stagely / preview", sha, n, 4*time.Minute)
	if run.Conclusion != "success" {
		ps.t.Fatalf("%s: preview check run %q: %s\n%s\n%s", what, run.Conclusion, run.Title, run.Summary, tail(run.Text, 30))
	}
	return run
}

// preview is pull request n's preview; one the server has not recorded yet is the zero
// Preview, whose state is "".
func (ps *previewStack) preview(n int) store.Preview {
	ps.t.Helper()
	pv, err := ps.st.PreviewByNumber(ps.ctx, ps.project.ID, n)
	if err != nil && !store.IsNotFound(err) {
		ps.t.Fatal(err)
	}
	return pv
}

// dockerIDs lists what docker kind ("ps -a", "network ls", "volume ls") shows of a compose project.
func dockerIDs(t testing.TB, kind, project string) []string {
	t.Helper()
	args := append(strings.Fields(kind), "-q", "--filter", "label=com.docker.compose.project="+project)
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", kind, err, out)
	}
	ids := strings.Fields(string(out))
	slices.Sort(ids)
	return ids
}

func TestPullRequestPreviews(t *testing.T) {
	t.Parallel()
	ps := newPreviewStack(t)
	prodCompose := ps.project.ComposeProject
	preview := func(n int) string { return fmt.Sprintf("%s-pr-%d", prodCompose, n) }
	for n := 1; n <= 5; n++ {
		t.Cleanup(func() { composeDown(t, preview(n)) })
	}
	prodPort := freePort(t)
	prodFiles := ps.filesOn("production\n", prodPort)
	ps.wantDeployed(ps.push("main", prodFiles, "production"), 3*time.Minute, "production")
	prodContainers := dockerIDs(t, "ps -a", prodCompose)
	if len(prodContainers) != 2 {
		t.Fatalf("production runs %v, want web and worker", prodContainers)
	}

	var sha1 string
	t.Run("two pull requests get their own preview, production untouched", func(t *testing.T) {
		sha1 = ps.openPR("opened", githubsim.PullRequest{Number: 1, Head: "pr-1", Author: "alice"}, ps.files("preview one\n"))
		sha2 := ps.openPR("opened", githubsim.PullRequest{Number: 2, Head: "pr-2", Author: "alice"}, ps.files("preview two\n"))
		run := ps.wantPreviewLive(sha1, 1, "pull request #1")
		ps.wantPreviewLive(sha2, 1, "pull request #2")
		if !strings.Contains(run.Summary, "https://"+host(1)) {
			t.Fatalf("the preview check run lacks its URL:\n%s", run.Summary)
		}
		ps.wantServing(1, "preview one\n")
		ps.wantServing(2, "preview two\n")
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort)); got != "production\n" {
			t.Fatalf("production answered %q", got)
		}
		if got := dockerIDs(t, "ps -a", prodCompose); !slices.Equal(got, prodContainers) {
			t.Fatalf("production's containers changed from %v to %v: a preview recreated them", prodContainers, got)
		}
		comments := ps.sim.IssueComments(ps.repo, 1)
		if len(comments) != 1 || !strings.Contains(comments[0].Body, "https://"+host(1)) {
			t.Fatalf("pull request #1's comments %+v, want one with its URL", comments)
		}
		var envURL string
		for _, d := range ps.sim.Deployments(ps.repo) {
			if d.Environment == "preview/pr-1" && len(d.Statuses) > 0 {
				envURL = d.Statuses[len(d.Statuses)-1].EnvironmentURL
			}
		}
		if envURL != "https://"+host(1) {
			t.Fatalf("preview/pr-1's GitHub deployment has environment_url %q, want the preview's URL", envURL)
		}
	})

	t.Run("a push to one pull request redeploys only its preview", func(t *testing.T) {
		others := dockerIDs(t, "ps -a", preview(2))
		next := ps.openPR("synchronize", githubsim.PullRequest{Number: 1, Head: "pr-1", Author: "alice"}, ps.files("preview one, again\n"))
		ps.wantPreviewLive(next, 1, "the push to #1")
		ps.wantServing(1, "preview one, again\n")
		if got := dockerIDs(t, "ps -a", preview(2)); !slices.Equal(got, others) {
			t.Fatalf("pull request #2's containers changed from %v to %v", others, got)
		}
		if got := dockerIDs(t, "ps -a", prodCompose); !slices.Equal(got, prodContainers) {
			t.Fatalf("production's containers changed: %v, want %v", got, prodContainers)
		}
		if c := ps.sim.IssueComments(ps.repo, 1); len(c) != 1 || !strings.Contains(c[0].Body, next[:7]) {
			t.Fatalf("pull request #1's comments %+v, want the one comment, updated to %s", c, next[:7])
		}
	})

	t.Run("closing a pull request removes everything of its preview", func(t *testing.T) {
		ps.sendPR("closed", githubsim.PullRequest{Number: 1, Head: "pr-1", Author: "alice", Merged: true})
		waitFor(t, 3*time.Minute, "pull request #1's preview stopped", func() bool { return ps.preview(1).State == store.PreviewStopped })
		for _, kind := range []string{"ps -a", "network ls", "volume ls"} {
			if left := dockerIDs(t, kind, preview(1)); len(left) != 0 {
				t.Fatalf("after the close, docker %s still shows %v of the preview", kind, left)
			}
		}
		if code, body, err := caddytest.Get(ps.ctx, ps.listen, host(1), "/"); err != nil || code != http.StatusNotFound {
			t.Fatalf("the closed preview's host answers %d %q %v, want 404", code, body, err)
		}
		ps.wantServing(2, "preview two\n")
		if c := ps.sim.IssueComments(ps.repo, 1); len(c) != 1 || !strings.Contains(c[0].Body, "stopped") {
			t.Fatalf("pull request #1's comment %+v, want it to say the preview stopped", c)
		}
		for _, d := range ps.sim.Deployments(ps.repo) {
			if d.Environment == "preview/pr-1" && d.Statuses[len(d.Statuses)-1].State != "inactive" {
				t.Fatalf("GitHub deployment %d of preview/pr-1 ends %q, want inactive", d.ID, d.Statuses[len(d.Statuses)-1].State)
			}
		}
	})

	t.Run("a fork's pull request waits for a user with write access", func(t *testing.T) {
		fork, err := ps.sim.Fork(ps.repo, "mallory")
		if err != nil {
			t.Fatal(err)
		}
		pr := githubsim.PullRequest{Number: 3, Head: "feature", HeadRepo: fork, Author: "mallory"}
		sha := ps.openPR("opened", pr, ps.files("from a fork\n"))
		run := ps.namedCheck("Stagely / preview", sha, 1, time.Minute)
		if run.Conclusion != "action_required" || len(run.Actions) != 1 {
			t.Fatalf("the fork's check run %q with %+v, want action_required with Deploy preview", run.Conclusion, run.Actions)
		}
		d, err := ps.sim.PressCheckRunButton(ps.ctx, ps.repo, run.ID, "deploy_preview", "mallory")
		if err != nil {
			t.Fatal(err)
		}
		if got := ps.delivery(d.ID); !strings.Contains(got.Decision, "refused: mallory") {
			t.Fatalf("mallory's press decided %q, want refused", got.Decision)
		}
		if st := ps.preview(3).State; st != store.PreviewAwaitingApproval {
			t.Fatalf("after a refused press the preview is %s", st)
		}
		if _, err := ps.sim.PressCheckRunButton(ps.ctx, ps.repo, run.ID, "deploy_preview", "alice"); err != nil {
			t.Fatal(err)
		}
		ps.wantPreviewLive(sha, 2, "the approved fork")
		ps.wantServing(3, "from a fork\n")
	})

	t.Run("the preview limit queues the third pull request until one stops", func(t *testing.T) {
		sha := ps.openPR("opened", githubsim.PullRequest{Number: 4, Head: "pr-4", Author: "alice"}, ps.files("preview four\n"))
		// Once the agent is idle, the sweeper offers #4 a slot every pass: each refusal marks the
		// preview queued again (updated_at moves), and its deployment stays queued.
		waitFor(t, 3*time.Minute, "the agent idle", func() bool {
			return !slices.ContainsFunc(ps.deployments(), func(d store.Deployment) bool {
				return d.Status == store.DeploymentDispatched || d.Status == store.DeploymentRunning
			})
		})
		waitFor(t, time.Minute, "pull request #4's preview recorded", func() bool { return ps.preview(4).State != "" })
		before := ps.preview(4).UpdatedAt
		waitFor(t, time.Minute, "a slot refused to pull request #4", func() bool {
			pv := ps.preview(4)
			return pv.State == store.PreviewQueued && pv.UpdatedAt.After(before)
		})
		for _, d := range ps.deployments() {
			if d.Environment == "preview/pr-4" && d.Status != store.DeploymentQueued {
				t.Fatalf("pull request #4's deployment is %s beyond max_previews 2, want queued", d.Status)
			}
		}
		ps.sendPR("closed", githubsim.PullRequest{Number: 2, Head: "pr-2", Author: "alice"})
		ps.wantPreviewLive(sha, 1, "the queued pull request #4")
		ps.wantServing(4, "preview four\n")
		if st := ps.preview(2).State; st != store.PreviewStopped {
			t.Fatalf("pull request #2's preview is %s, want stopped", st)
		}
	})

	t.Run("a preview with container_name fails with a clear check run", func(t *testing.T) {
		files := ps.files("fixed name\n")
		files["compose.yaml"] = []byte(strings.Replace(string(files["compose.yaml"]), "  worker:\n", "  worker:\n    container_name: shop-worker\n", 1))
		sha := ps.openPR("opened", githubsim.PullRequest{Number: 5, Head: "pr-5", Author: "alice"}, files)
		run := ps.namedCheck("Stagely / preview", sha, 1, time.Minute)
		if run.Conclusion != "failure" || !strings.Contains(run.Summary+run.Text, "container_name") {
			t.Fatalf("check run %q %q\n%s", run.Conclusion, run.Title, run.Summary)
		}
		if left := dockerIDs(t, "ps -a", preview(5)); len(left) != 0 {
			t.Fatalf("the refused preview left containers %v", left)
		}
	})
}
