package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/deploy"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/app/intake"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// arrivals records when each SHA's DEPLOY reached the agent and answers at once, so the
// project is free for its next push.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *arrivals) Deploy(_ context.Context, job protocol.Deploy, _ deployer.Events) protocol.JobResult {
	a.mu.Lock()
	a.at[job.SHA] = time.Now()
	a.mu.Unlock()
	return protocol.JobResult{JobID: job.JobID, Status: protocol.StatusSuccess}
}

type orchRef struct{ h *hub.Hub }

func (r *orchRef) Dispatch(ctx context.Context, agentID int64, job protocol.Deploy) error {
	return r.h.Dispatch(ctx, agentID, job)
}
func (r *orchRef) Cancel(agentID int64, jobID string) error { return r.h.Cancel(agentID, jobID) }
func (r *orchRef) Idle(agentID int64) bool                  { return r.h.Idle(agentID) }

// BenchmarkWebhookToDeploy measures the control plane's latency from a push webhook
// leaving GitHub to the DEPLOY frame reaching the agent, at a steady rate of pushes on
// loopback: githubsim sends signed webhooks to the real intake handler, the worker
// processes them from PostgreSQL, the orchestrator reads stagely.yaml and reports to
// githubsim, and the hub hands the job to a real agent connection.
//
// STAGELY_BENCH_PUSHES (default 1000) pushes at STAGELY_BENCH_RATE per second (default 100),
// spread over STAGELY_BENCH_REPOS repositories (default 50).
func BenchmarkWebhookToDeploy(b *testing.B) {
	pushes, rate, repos := envInt("STAGELY_BENCH_PUSHES", 1000), envInt("STAGELY_BENCH_RATE", 100), envInt("STAGELY_BENCH_REPOS", 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	k := apptest.New(b, githubsim.Options{})
	sim, st := k.Sim, k.Store
	// GitHub allows an installation 5,000 calls an hour and githubsim enforces it; a push
	// costs about ten calls, so the pushes are spread over installations of 5 repositories.
	instOf := map[string]int64{}
	files := map[string][]byte{
		"compose.yaml": []byte("services:\n  web:\n    image: busybox\n"),
		"stagely.yaml": []byte("version: \"1.0\"\n"),
	}
	names := make([]string, repos)
	for i := range names {
		owner := fmt.Sprintf("org%d", i/5)
		if i%5 == 0 {
			instOf[owner] = sim.AddInstallation(owner)
		}
		names[i] = fmt.Sprintf("%s/r%d", owner, i)
		if err := sim.CreateRepo(instOf[owner], names[i], "main"); err != nil {
			b.Fatal(err)
		}
		if _, err := sim.Commit(ctx, names[i], "main", files, "initial"); err != nil {
			b.Fatal(err)
		}
	}

	app := k.App(b, github.Options{Logger: quiet})
	ref := &orchRef{}
	orch := deploy.New(deploy.Options{
		Store: st, Hub: ref, Secrets: k.Secrets(), PublicURL: "http://stagely.test", Logger: quiet,
		GitHub: func(id int64) deploy.GitHub { return app.Installation(id) },
	})
	h := hub.New(hub.Options{Store: st, Sink: orch, Logger: quiet})
	defer h.Close()
	ref.h = h
	worker := intake.NewWorker(intake.WorkerOptions{Queue: st, Logger: quiet, Handlers: []intake.EventHandler{
		intake.On(deploy.NewPushHandler(orch).Handle), intake.On(deploy.NewPullRequestHandler(orch).Handle),
		intake.On(deploy.NewCheckRunHandler(orch).Handle), intake.On(deploy.NewCheckSuiteHandler(orch).Handle),
	}})
	go func() { _ = worker.Run(ctx) }()
	secret := []byte(sim.WebhookSecret())
	mux := http.NewServeMux()
	mux.Handle("/webhooks/github", intake.NewHandler(st, func(context.Context) ([]byte, error) { return secret, nil }, worker.Poke, quiet, nil))
	mux.Handle("/agent/ws", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sim.SetWebhookURL(srv.URL + "/webhooks/github")

	// One agent per repository, as on a fleet of small servers: each agent runs one job at a
	// time, so sharing one agent would measure that agent's queue, not the control plane.
	user, _ := st.UpsertUser(ctx, store.User{GitHubID: 1, Login: "alice"})
	rows := map[string]int64{}
	for owner, id := range instOf {
		in, err := st.UpsertInstallation(ctx, store.Installation{GitHubID: id, AccountLogin: owner, AccountID: id, AccountType: "Organization"})
		if err != nil {
			b.Fatal(err)
		}
		rows[owner] = in.ID
	}
	arr := &arrivals{at: map[string]time.Time{}}
	var agentIDs []int64
	for i, name := range names {
		agentRow, token := apptest.NewAgent(b, st, user.ID, fmt.Sprintf("box%d", i))
		agentIDs = append(agentIDs, agentRow.ID)
		owner, _, _ := strings.Cut(name, "/")
		if _, err := st.CreateProject(ctx, store.NewProject{UserID: user.ID, InstallationID: rows[owner], Name: fmt.Sprintf("p%d", i),
			RepoID: sim.RepoID(name), RepoFullName: name, DeployBranch: "main", AgentID: &agentRow.ID}); err != nil {
			b.Fatal(err)
		}
		jr, err := journal.Open(filepath.Join(b.TempDir(), "journal"))
		if err != nil {
			b.Fatal(err)
		}
		client, err := conn.New(conn.Options{ServerURL: srv.URL, Token: token, Runner: arr, Journal: jr, AgentVersion: "bench",
			Hostname: "bench", Versions: func(context.Context) (string, string) { return "", "" }, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = client.Run(ctx) }()
	}
	for _, id := range agentIDs {
		for !h.Online(id) {
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Warm up: one deploy per repository, so installation tokens are minted and connections
	// open, as on a server that has been running; then measure the steady state.
	for _, name := range names {
		tree := map[string][]byte{"n.txt": []byte("warm-up " + name)}
		for k, v := range files {
			tree[k] = v
		}
		if _, err := sim.Commit(ctx, name, "main", tree, "warm up"); err != nil {
			b.Fatal(err)
		}
	}
	for warm := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		arr.mu.Lock()
		n := len(arr.at)
		arr.mu.Unlock()
		if n >= len(names) {
			break
		}
		if time.Since(warm) > time.Minute {
			b.Fatalf("warm-up: %d of %d repositories deployed within a minute", n, len(names))
		}
	}
	arr.mu.Lock()
	clear(arr.at)
	arr.mu.Unlock()

	b.ResetTimer()
	type sent struct {
		sha string
		at  time.Time
	}
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := 0; i < pushes; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			tree := map[string][]byte{"n.txt": []byte(strconv.Itoa(i))}
			for k, v := range files {
				tree[k] = v
			}
			sha, err := sim.Commit(ctx, names[i%repos], "main", tree, "push")
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			all = append(all, sent{sha, start})
			mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	// Wait until no deployment is queued or running any more.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var open int
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM deployments WHERE finished_at IS NULL`).Scan(&open); err != nil {
			b.Fatal(err)
		}
		var pending int
		_ = st.DB().QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'processing')`).Scan(&pending)
		if open == 0 && pending == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	outcomes, err := st.DB().QueryContext(ctx, `SELECT status, left(error, 120), count(*) FROM deployments GROUP BY 1, 2 ORDER BY 3 DESC`)
	if err != nil {
		b.Fatal(err)
	}
	for outcomes.Next() {
		var status, msg string
		var n int
		_ = outcomes.Scan(&status, &msg, &n)
		b.Logf("%5d %s %s", n, status, msg)
	}
	outcomes.Close()

	var lat []time.Duration
	arr.mu.Lock()
	for _, s := range all {
		if at, ok := arr.at[s.sha]; ok {
			lat = append(lat, at.Sub(s.at))
		}
	}
	arr.mu.Unlock()
	// A push that arrives while its project's previous deploy still runs waits for it by
	// design (one deployment at a time per project); such pushes would be superseded or
	// queued, so every SHA must still have been deployed here, where deploys take no time.
	if len(lat) == 0 {
		b.Fatalf("none of %d pushes reached the agent", len(all))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat)), "deployed")
	b.ReportMetric(float64(len(all)-len(lat)), "superseded")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
