package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

func (d *demo) startServer(ctx context.Context) error {
	port, err := freePort(d.opt.port)
	if err != nil {
		return err
	}
	if d.opt.port != 0 && port != d.opt.port {
		d.out.step("server", "port %d is taken; using %d", d.opt.port, port)
	}
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate the secret key: %w", err)
	}
	if d.keys, err = seal.NewKeyring(key); err != nil {
		return err
	}
	d.serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	// DESIGN.md §7's variables, pointing at githubsim instead of github.com.
	env := childEnv(d.getenv, append([]string{
		"STAGELY_DATABASE_URL=" + d.dsn,
		"STAGELY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		fmt.Sprintf("STAGELY_LISTEN=127.0.0.1:%d", port),
		"STAGELY_PUBLIC_URL=" + d.serverURL,
		"STAGELY_SWEEP_INTERVAL=500ms",
	}, d.sim.ServerEnv()...)...)
	t0 := time.Now()
	d.server, err = startProcess("stagely-server", d.opt.serverBin, nil, env, filepath.Join(d.opt.workdir, "server.log"))
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	err = d.waitFor(ctx, time.Minute, "the server's /readyz", func() (bool, error) {
		resp, err := client.Get(d.serverURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return err
	}
	if d.st, err = store.Open(ctx, d.dsn); err != nil {
		return err
	}
	d.sim.SetWebhookURL(d.serverURL + "/webhooks/github")
	d.out.step("server", "%s ready in %s (schema migrated; log %s)", d.serverURL, since(t0), d.server.logPath)
	return nil
}

func (d *demo) installApp(ctx context.Context) error {
	t0 := time.Now()
	dl, err := d.sim.SendInstallation(ctx, d.inst, "created")
	if err != nil {
		return err
	}
	d.out.step("webhook", "installation created (the App installed on %s) -> HTTP %d in %s", demoLogin, dl.StatusCode, since(t0))
	rec, err := d.delivery(ctx, dl.ID)
	if err != nil {
		return err
	}
	if _, err := d.st.InstallationByGitHubID(ctx, d.inst); err != nil {
		return fmt.Errorf("the server did not record the installation (%s): %w", rec.Decision, err)
	}
	d.out.step("webhook", "server: %s", rec.Decision)
	return nil
}

// register creates what a user creates in the dashboard: their account (by signing in), an
// agent with its one-time token, the project linking demo/hello's main branch to the agent,
// and the project's secrets. With the dashboard API served it goes through /api with the
// session from githubsim's OAuth; without, through the store, the rows the API would write.
func (d *demo) register(ctx context.Context) error {
	signedIn, err := d.signIn(ctx)
	if err != nil {
		return err
	}
	var token string
	if signedIn {
		if token, err = d.registerThroughAPI(ctx); err != nil {
			return err
		}
	} else if token, err = d.registerThroughStore(ctx); err != nil {
		return err
	}
	// Recorded at once, so a run killed from here on is cleaned up by the next one.
	if err := writeState(d.opt.workdir, runState{ComposeProjects: []string{d.project.ComposeProject, d.previewComposeProject()}}); err != nil {
		return err
	}
	if err := d.putSecret(ctx, "global", "GREETING", "hello from a secret"); err != nil {
		return err
	}
	if err := d.putSecret(ctx, workerScope, "QUEUE_URL", "redis://queue-1:6379/0"); err != nil {
		return err
	}
	d.out.step("agent", "%q created; its token %s… is shown once, only a bcrypt hash is stored", agentName, tokenPrefix(token))
	d.out.step("project", "%q deploys %s@%s on agent %q (compose project %s)", d.project.Name, demoRepo, demoBranch, agentName, d.project.ComposeProject)
	d.out.step("secrets", "GREETING for every service, QUEUE_URL for service %s only (sealed with AES-256-GCM)", workerScope)

	cfg, err := json.Marshal(map[string]string{"server_url": d.serverURL, "token": token})
	if err != nil {
		return err
	}
	// The agent reads config.json exactly as cloud-init writes it to /etc/stagely/config.json.
	if err := os.WriteFile(d.agentConfigPath(), cfg, 0o600); err != nil {
		return fmt.Errorf("write the agent's config: %w", err)
	}
	return nil
}

// signIn signs in through githubsim's OAuth when the server serves /auth/github/login and
// the dashboard API answers; it reports whether it did.
func (d *demo) signIn(ctx context.Context) (bool, error) {
	ok, err := d.probeAuth(ctx)
	if err != nil || !ok {
		return false, err
	}
	client, err := d.signInOAuth(ctx)
	if err != nil {
		return false, err
	}
	d.api = &apiClient{base: d.serverURL, http: client}
	d.signInURL = d.serverURL + "/auth/github/login"
	return true, nil
}

func (d *demo) registerThroughStore(ctx context.Context) (string, error) {
	user, err := d.st.UpsertUser(ctx, store.User{GitHubID: d.userGHID, Login: demoLogin, Name: demoLogin})
	if err != nil {
		return "", err
	}
	in, err := d.st.InstallationByGitHubID(ctx, d.inst)
	if err != nil {
		return "", err
	}
	var token string
	d.agentRow, err = d.st.CreateAgent(ctx, user.ID, agentName, func(id int64) (string, error) {
		m, err := agenttoken.Mint(id)
		token = m.Token
		return m.Hash, err
	})
	if err != nil {
		return "", fmt.Errorf("create the agent: %w", err)
	}
	d.project, err = d.st.CreateProject(ctx, store.NewProject{
		UserID: user.ID, InstallationID: in.ID, Name: "hello", RepoID: d.sim.RepoID(demoRepo),
		RepoFullName: demoRepo, DeployBranch: demoBranch, AgentID: &d.agentRow.ID,
	})
	if err != nil {
		return "", fmt.Errorf("create the project: %w", err)
	}
	d.out.step("note", "this server has no /auth/github/login yet (issue [4]): the demo writes the rows the dashboard API would")
	return token, nil
}

func (d *demo) secretsService() *secrets.Service { return secrets.New(d.st, d.keys) }

func (d *demo) agentConfigPath() string { return filepath.Join(d.opt.workdir, "agent-config.json") }

func (d *demo) startAgent(ctx context.Context) error {
	env := childEnv(d.getenv,
		"STAGELY_DATA_DIR="+filepath.Join(d.opt.workdir, "agent"),
		// A deploy running at Ctrl-C may finish for this long; the demo should stop promptly.
		"STAGELY_SHUTDOWN_GRACE=15s",
	)
	env = append(env, d.agentPreviewEnv()...)
	t0 := time.Now()
	var err error
	d.agent, err = startProcess("stagely-agent", d.opt.agentBin, []string{"--config", d.agentConfigPath()}, env, filepath.Join(d.opt.workdir, "agent.log"))
	if err != nil {
		return err
	}
	var a store.Agent
	err = d.waitFor(ctx, 30*time.Second, "the agent online", func() (bool, error) {
		var err error
		a, err = d.st.AgentByID(ctx, d.agentRow.ID)
		return err == nil && a.Status != store.AgentOffline, err
	})
	if err != nil {
		return err
	}
	d.out.step("agent", "online in %s: HELLO from %s, agent %s, Docker %s, compose %s (log %s)", since(t0), a.Hostname, a.Version, a.DockerVersion, a.ComposeVersion, d.agent.logPath)
	return nil
}

func (d *demo) pushAndDeploy(ctx context.Context) error {
	const msg = "Add the hello service"
	t0 := time.Now()
	// githubsim delivers the push webhook inside Commit, as GitHub does right after a push.
	sha, err := d.sim.Commit(ctx, demoRepo, demoBranch, d.repo.Files(), msg)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	answered := time.Since(t0)
	dl, err := d.lastDelivery("push")
	if err != nil {
		return err
	}
	d.out.step("push", "commit %s %q to %s@%s", sha[:7], msg, demoRepo, demoBranch)
	d.out.step("webhook", "push delivery %s -> HTTP %d in %s", dl.ID, dl.StatusCode, answered.Round(time.Millisecond))
	rec, err := d.delivery(ctx, dl.ID)
	if err != nil {
		return err
	}
	d.out.step("webhook", "server: %s (+%s)", rec.Decision, rec.ProcessedAt.Time.Sub(t0).Round(time.Millisecond))
	dep, err := d.follow(ctx, 0, t0)
	if err != nil {
		return err
	}
	run, err := d.completedCheckRun(ctx, dep.ID)
	if err != nil {
		return err
	}
	// Seen by polling githubsim: GitHub's completed_at has whole seconds only.
	completed := time.Since(t0)
	d.checkRun = run.ID
	d.out.step("check run", "%q %s: %s (+%s)", run.Name, run.Conclusion, run.Title, completed.Round(time.Millisecond))
	if run.Conclusion != "success" {
		return fmt.Errorf("the deploy check run concluded %q: %s\n%s\n%s", run.Conclusion, run.Title, run.Summary, run.Text)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", d.repo.Port)
	body, err := d.get(ctx, url)
	if err != nil {
		return err
	}
	served := time.Since(t0)
	d.out.step("service", "GET %s -> 200 %q (+%s after the push)", url, strings.TrimSpace(body), served.Round(time.Millisecond))
	if body != d.repo.Page {
		return fmt.Errorf("the service answered %q, want %q", body, d.repo.Page)
	}
	d.out.step("timings", "push -> webhook answered %s -> DEPLOY sent %s -> agent done %s -> check run completed %s -> page served %s",
		answered.Round(time.Millisecond), dep.DispatchedAt.Time.Sub(t0).Round(time.Millisecond),
		dep.FinishedAt.Time.Sub(t0).Round(time.Millisecond), completed.Round(time.Millisecond), served.Round(time.Millisecond))
	return nil
}

func (d *demo) secretRedeploy(ctx context.Context) error {
	before, err := containerIDs(ctx, d.project.ComposeProject)
	if err != nil {
		return err
	}
	d.out.step("containers", "before: %s", describeIDs(before))
	const newQueue = "redis://queue-2:6379/0"
	if err := d.putSecret(ctx, workerScope, "QUEUE_URL", newQueue); err != nil {
		return err
	}
	d.out.step("secret", "QUEUE_URL of service %s changed", workerScope)

	last, err := d.st.DeploymentsByProject(ctx, d.project.ID, 1)
	if err != nil || len(last) == 0 {
		return fmt.Errorf("find the last deployment: %v", err)
	}
	t0 := time.Now()
	dl, err := d.sim.SendCheckRunRequestedAction(ctx, demoRepo, d.checkRun, "redeploy")
	if err != nil {
		return fmt.Errorf("press the check run's Redeploy button: %w", err)
	}
	d.out.step("webhook", "check_run requested_action \"redeploy\" (the check run's Redeploy button) -> HTTP %d in %s", dl.StatusCode, since(t0))
	rec, err := d.delivery(ctx, dl.ID)
	if err != nil {
		return err
	}
	d.out.step("webhook", "server: %s", rec.Decision)
	dep, err := d.follow(ctx, last[0].ID, t0)
	if err != nil {
		return err
	}
	run, err := d.completedCheckRun(ctx, dep.ID)
	if err != nil {
		return err
	}
	d.out.step("check run", "%q %s: %s (+%s)", run.Name, run.Conclusion, run.Title, since(t0))
	if run.Conclusion != "success" {
		return fmt.Errorf("the redeploy's check run concluded %q: %s\n%s", run.Conclusion, run.Title, run.Summary)
	}
	d.checkRun = run.ID

	after, err := containerIDs(ctx, d.project.ComposeProject)
	if err != nil {
		return err
	}
	d.out.step("containers", "after:  %s", describeIDs(after))
	var recreated, kept []string
	for svc, id := range after {
		if before[svc] == id {
			kept = append(kept, svc)
		} else {
			recreated = append(recreated, svc)
		}
	}
	sort.Strings(recreated)
	sort.Strings(kept)
	if strings.Join(recreated, ",") != workerScope || len(kept) == 0 {
		return fmt.Errorf("recreated %v and kept %v; want only %s recreated", recreated, kept, workerScope)
	}
	env, err := containerEnv(ctx, after[workerScope])
	if err != nil {
		return err
	}
	if env["QUEUE_URL"] != newQueue {
		return fmt.Errorf("the new %s container does not carry the new QUEUE_URL", workerScope)
	}
	d.out.step("containers", "only %s was recreated (its environment has the new QUEUE_URL); %s kept running", workerScope, strings.Join(kept, ", "))
	return nil
}

func (d *demo) dashboard(ctx context.Context) error {
	if d.signInURL != "" {
		d.out.step("dashboard", "%s — open it: githubsim's OAuth signs you in as %q at once", d.signInURL, demoLogin)
		return nil
	}
	d.out.step("dashboard", "%s/ (sign-in through githubsim's OAuth comes with the dashboard, issue [4]: this server has no /auth/github/login yet)", d.serverURL)
	return nil
}

// follow waits for the project's first deployment after afterID and prints it as it runs:
// the DEPLOY going out, each log line the agent streams, the result.
func (d *demo) follow(ctx context.Context, afterID int64, t0 time.Time) (store.Deployment, error) {
	var dep store.Deployment
	err := d.waitFor(ctx, 30*time.Second, "the deployment row", func() (bool, error) {
		ds, err := d.st.DeploymentsByProject(ctx, d.project.ID, 1)
		if err != nil || len(ds) == 0 {
			return false, err
		}
		dep = ds[0]
		return dep.ID > afterID, nil
	})
	if err != nil {
		return dep, err
	}
	d.out.step("deployment", "#%d queued: %s of %s", dep.ID, dep.Trigger, dep.SHA[:7])
	var seq int64
	dispatched := false
	printLogs := func() error {
		lines, err := d.st.Logs(ctx, dep.ID, seq, 1000)
		if err != nil {
			return err
		}
		for _, l := range lines {
			d.out.detail("%-6s %s", l.Stream, l.Line)
			seq = l.Seq
		}
		return nil
	}
	err = d.waitFor(ctx, deployLimit, fmt.Sprintf("deployment #%d to finish", dep.ID), func() (bool, error) {
		var err error
		if dep, err = d.st.DeploymentByID(ctx, dep.ID); err != nil {
			return false, err
		}
		if !dispatched && dep.DispatchedAt.Valid {
			dispatched = true
			d.out.step("DEPLOY", "#%d sent to agent %q over its WebSocket (+%s); the agent's log:", dep.ID, agentName, dep.DispatchedAt.Time.Sub(t0).Round(time.Millisecond))
		}
		if !dispatched {
			return false, nil
		}
		if err := printLogs(); err != nil {
			return false, err
		}
		return dep.Finished(), nil
	})
	if err != nil {
		return dep, err
	}
	// The log is complete: the server stores a job's lines before its result, and the last
	// poll printed them after it had read the finished deployment.
	took := dep.FinishedAt.Time.Sub(dep.DispatchedAt.Time).Round(10 * time.Millisecond)
	d.out.step("result", "deployment #%d %s in %s on the agent (+%s)", dep.ID, dep.Status, took, since(t0))
	return dep, nil
}

// completedCheckRun waits for the deployment's "Stagely / deploy" check run in githubsim to complete.
func (d *demo) completedCheckRun(ctx context.Context, deploymentID int64) (githubsim.CheckRun, error) {
	var run githubsim.CheckRun
	err := d.waitFor(ctx, 30*time.Second, "the deploy check run to complete", func() (bool, error) {
		dep, err := d.st.DeploymentByID(ctx, deploymentID)
		if err != nil || !dep.CheckRunID.Valid {
			return false, err
		}
		for _, r := range d.sim.CheckRuns(demoRepo, dep.SHA) {
			if r.ID == dep.CheckRunID.Int64 && r.Name == checkDeploy && r.Status == "completed" {
				run = r
				return true, nil
			}
		}
		return false, nil
	})
	return run, err
}

// delivery waits for the server to finish processing a webhook delivery.
func (d *demo) delivery(ctx context.Context, id string) (store.Delivery, error) {
	var rec store.Delivery
	err := d.waitFor(ctx, 30*time.Second, "delivery "+id+" to be processed", func() (bool, error) {
		var err error
		rec, err = d.st.DeliveryByDeliveryID(ctx, id)
		if store.IsNotFound(err) {
			return false, nil
		}
		return err == nil && (rec.Status == store.DeliveryDone || rec.Status == store.DeliveryFailed), err
	})
	if err == nil && rec.Status == store.DeliveryFailed {
		return rec, fmt.Errorf("the server failed to process delivery %s: %s", id, rec.Decision)
	}
	return rec, err
}

func (d *demo) lastDelivery(event string) (githubsim.Delivery, error) {
	ds := d.sim.Deliveries()
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Event == event {
			if ds[i].StatusCode/100 != 2 {
				return ds[i], fmt.Errorf("the server answered the %s webhook with HTTP %d %s%s", event, ds[i].StatusCode, ds[i].ResponseBody, ds[i].Err)
			}
			return ds[i], nil
		}
	}
	return githubsim.Delivery{}, fmt.Errorf("githubsim sent no %s webhook", event)
}

// get fetches a URL, retrying briefly while the service starts.
func (d *demo) get(ctx context.Context, url string) (string, error) {
	client := &http.Client{Timeout: 3 * time.Second}
	var body string
	err := d.waitFor(ctx, 20*time.Second, "GET "+url, func() (bool, error) {
		resp, err := client.Get(url)
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

// waitFor polls ok until it reports true, fails, the time is up, or a started binary exits.
func (d *demo) waitFor(ctx context.Context, within time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := ok()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if done {
			return nil
		}
		for _, p := range []*process{d.server, d.agent} {
			if p == nil {
				continue
			}
			if err := p.exitedErr(); err != nil {
				return fmt.Errorf("wait for %s: %w", what, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", within, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stop ends everything this run started, in reverse order, and says what it did.
func (d *demo) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var done, problems []string
	if d.agent != nil {
		d.agent.Stop(30 * time.Second)
		done = append(done, "agent")
	}
	if d.server != nil {
		d.server.Stop(15 * time.Second)
		done = append(done, "server")
	}
	if d.caddy != nil {
		d.caddy.Stop(10 * time.Second)
		done = append(done, "caddy")
	}
	// The agent's token dies with the database, but is not left lying around either.
	_ = os.Remove(d.agentConfigPath())
	if d.sim != nil {
		d.sim.Close()
		done = append(done, "githubsim")
	}
	if d.st != nil {
		d.st.Close()
	}
	if d.project.ComposeProject != "" {
		if err := composeDown(ctx, d.previewComposeProject()); err != nil {
			problems = append(problems, err.Error())
		} else {
			done = append(done, "compose project "+d.previewComposeProject())
		}
		if err := composeDown(ctx, d.project.ComposeProject); err != nil {
			problems = append(problems, err.Error())
		} else {
			done = append(done, "compose project "+d.project.ComposeProject)
			if err := writeState(d.opt.workdir, runState{}); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	if d.admin != nil {
		if d.dbName != "" {
			if err := d.admin.drop(ctx, d.dbName); err != nil {
				problems = append(problems, err.Error())
			} else {
				done = append(done, "database "+d.dbName)
			}
		}
		d.admin.Close()
	}
	if len(done) > 0 {
		d.out.step("stop", "stopped and removed: %s (logs stay in %s)", strings.Join(done, ", "), d.opt.workdir)
	}
	for _, p := range problems {
		d.out.step("stop", "could not clean up: %s", p)
	}
}

func describeIDs(ids map[string]string) string {
	names := make([]string, 0, len(ids))
	for n := range ids {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + shortID(ids[n])
	}
	return strings.Join(parts, ", ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// tokenPrefix shows the agent-id part of a token, never its secret.
func tokenPrefix(token string) string {
	if i := strings.Index(strings.TrimPrefix(token, "stg_"), "_"); i >= 0 {
		return token[:len("stg_")+i+1]
	}
	return "stg_"
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
