package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/githubsim"
)

const (
	// previewNumber is the pull request the demo opens.
	previewNumber = 1
	previewBranch = "greeting"
	checkPreview  = "Stagely / preview"
	// previewDomain is under .localhost, which browsers resolve to 127.0.0.1 by themselves,
	// so the preview's host name opens from the demo machine without DNS.
	previewDomain = "preview.localhost"
)

// previewYAML is the sample's stagely.yaml with a preview: section, as the pull request has it.
func previewYAML() string {
	return fmt.Sprintf(`version: "1.0"
deployment:
  timeout: 120s
hooks:
  pre_deploy:
    - service: web
      command: %q
preview:
  domain: %s
  services:
    web: 8080
`, demoHook, previewDomain)
}

// startCaddy runs the machine's Caddy for the demo's previews: `caddy run` with a config in
// the workdir, its admin API and listeners on free loopback ports, so it never takes 80 or 443.
// The agent configures the preview's route through its admin API.
func (d *demo) startCaddy(ctx context.Context) error {
	if _, err := commandLine(ctx, "caddy", "version"); err != nil {
		return fmt.Errorf("caddy is not installed: %w (run scripts/ensure-caddy.sh, or `make demo`, which runs it)", err)
	}
	var ports [4]int
	for i := range ports {
		p, err := freePort(0)
		if err != nil {
			return err
		}
		ports[i] = p
	}
	dir := filepath.Join(d.opt.workdir, "caddy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create Caddy's directory: %w", err)
	}
	d.caddyAdmin = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	d.previewListen = fmt.Sprintf("127.0.0.1:%d", ports[1])
	cfg := map[string]any{
		"admin":   map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", ports[0])},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		"apps": map[string]any{
			"http": map[string]any{"http_port": ports[2], "https_port": ports[3]},
			"pki":  map[string]any{"certificate_authorities": map[string]any{"local": map[string]any{"install_trust": false}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write Caddy's config: %w", err)
	}
	caddyBin, err := exec.LookPath("caddy")
	if err != nil {
		return fmt.Errorf("find caddy: %w", err)
	}
	env := childEnv(d.getenv, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	d.caddy, err = startProcess("caddy", caddyBin, []string{"run", "--config", path}, env, filepath.Join(d.opt.workdir, "caddy.log"))
	if err != nil {
		return err
	}
	return d.waitFor(ctx, 30*time.Second, "Caddy's admin API", func() (bool, error) {
		resp, err := http.Get(d.caddyAdmin + "/config/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// agentPreviewEnv is what the agent needs to route previews through the demo's Caddy.
func (d *demo) agentPreviewEnv() []string {
	return []string{
		"STAGELY_CADDY_ADMIN=" + d.caddyAdmin,
		"STAGELY_PREVIEW_LISTEN=" + d.previewListen,
		// TLS off: the demo's preview answers plain HTTP on loopback; a real host gets
		// certificates from Caddy on demand (docs/previews.md).
		"STAGELY_PREVIEW_TLS=off",
		"STAGELY_PREVIEW_ASK_LISTEN=127.0.0.1:0",
	}
}

// pullRequestPreview switches previews on, opens a pull request that changes the page, and
// follows its preview until it answers through Caddy.
func (d *demo) pullRequestPreview(ctx context.Context) error {
	if err := d.st.SetProjectPreviews(ctx, d.project.UserID, d.project.ID, true, nil); err != nil {
		return fmt.Errorf("switch previews on: %w", err)
	}
	d.out.step("previews", "switched on for project %s", d.project.Name)
	pr := samplerepo.Repo{Image: d.repo.Image, Port: d.repo.Port, Page: "Hello from pull request #1!\n", StagelyYAML: previewYAML()}
	sha, err := d.sim.Commit(ctx, demoRepo, previewBranch, pr.Files(), "Change the greeting")
	if err != nil {
		return fmt.Errorf("push the pull request's branch: %w", err)
	}
	t0 := time.Now()
	dl, err := d.sim.SendPullRequest(ctx, demoRepo, "opened", githubsim.PullRequest{Number: previewNumber, Title: "Change the greeting", Head: previewBranch, Author: demoLogin})
	if err != nil {
		return fmt.Errorf("open the pull request: %w", err)
	}
	d.out.step("pull request", "#%d %q opened from %s (head %s) -> HTTP %d", previewNumber, "Change the greeting", previewBranch, sha[:7], dl.StatusCode)
	rec, err := d.delivery(ctx, dl.ID)
	if err != nil {
		return err
	}
	d.out.step("webhook", "server: %s", rec.Decision)
	run, err := d.previewCheckRun(ctx, sha)
	if err != nil {
		return err
	}
	d.out.step("check run", "%q %s: %s (+%s)", run.Name, run.Conclusion, run.Title, since(t0))
	if run.Conclusion != "success" {
		return fmt.Errorf("the preview's check run concluded %q: %s\n%s\n%s", run.Conclusion, run.Title, run.Summary, run.Text)
	}
	pv, err := d.st.PreviewByNumber(ctx, d.project.ID, previewNumber)
	if err != nil {
		return err
	}
	url := pv.URLMap()["web"]
	host := url[len("https://"):]
	body, err := d.getHost(ctx, host)
	if err != nil {
		return err
	}
	if body != pr.Page {
		return fmt.Errorf("the preview answered %q, want %q", body, pr.Page)
	}
	d.out.step("preview", "%s -> 200 %q (+%s after the pull request opened)", url, body[:len(body)-1], since(t0))
	d.out.step("preview URL", "%s — on this machine: http://%s:%s/ (Caddy, plain HTTP on loopback)", url, host, portOf(d.previewListen))
	return nil
}

// previewCheckRun waits for the pull request head's "Stagely / preview" check run to complete.
func (d *demo) previewCheckRun(ctx context.Context, sha string) (githubsim.CheckRun, error) {
	var run githubsim.CheckRun
	err := d.waitFor(ctx, deployLimit, "the preview check run to complete", func() (bool, error) {
		for _, r := range d.sim.CheckRuns(demoRepo, sha) {
			if r.Name == checkPreview && r.Status == "completed" {
				run = r
				return true, nil
			}
		}
		return false, nil
	})
	return run, err
}

// getHost fetches / from the demo's Caddy with Host: host, as a browser on this machine would.
func (d *demo) getHost(ctx context.Context, host string) (string, error) {
	var body string
	err := d.waitFor(ctx, 30*time.Second, "GET "+host+" through Caddy", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.previewListen+"/", nil)
		if err != nil {
			return false, err
		}
		req.Host = host
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK, nil
	})
	return body, err
}

// previewComposeProject is the compose project of the demo's preview, which stop removes.
func (d *demo) previewComposeProject() string {
	return fmt.Sprintf("%s-pr-%d", d.project.ComposeProject, previewNumber)
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
