package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

// BenchmarkPreviewOpenToURL measures what a pull request preview adds to its own deploy: from
// the pull_request webhook leaving GitHub to the preview's URL answering through real Caddy,
// against the agent's own job (the deployment's started_at to finished_at). Each iteration
// opens a new pull request, then closes it and waits for the teardown outside the timer, so
// the preview limit never queues one. Run it with -benchtime=Nx: one iteration is a deploy.
func BenchmarkPreviewOpenToURL(b *testing.B) {
	ps := newPreviewStack(b)
	// Pull requests are opened against main, which production deploys first.
	ps.wantDeployed(ps.push("main", ps.files("production\n"), "production"), 3*time.Minute, "production")
	b.ResetTimer()
	var urlMS, jobMS, overheadMS []float64
	for i := 0; i < b.N; i++ {
		n := i + 1
		b.StopTimer()
		page := fmt.Sprintf("preview %d\n", n)
		pr := githubsim.PullRequest{Number: n, Head: fmt.Sprintf("pr-%d", n), Author: "alice"}
		if _, err := ps.sim.Commit(ps.ctx, ps.repo, pr.Head, ps.files(page), page); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		ps.sendPR("opened", pr)
		ps.wantServing(n, page)
		took := time.Since(start)
		b.StopTimer()

		job := ps.previewJob(n)
		urlMS = append(urlMS, ms(took))
		jobMS = append(jobMS, ms(job))
		overheadMS = append(overheadMS, ms(took-job))
		ps.sendPR("closed", pr)
		waitFor(b, 4*time.Minute, fmt.Sprintf("pull request #%d's preview to stop", n), func() bool {
			return ps.preview(n).State == store.PreviewStopped
		})
		b.StartTimer()
	}
	b.ReportMetric(median(urlMS), "url-ms")
	b.ReportMetric(median(jobMS), "job-ms")
	b.ReportMetric(median(overheadMS), "overhead-ms")
	b.ReportMetric(slices.Max(overheadMS), "max-overhead-ms")
}

// previewJob is how long the agent worked on pull request n's successful preview deploy.
func (ps *previewStack) previewJob(n int) time.Duration {
	ps.t.Helper()
	var job time.Duration
	waitFor(ps.t, time.Minute, fmt.Sprintf("pull request #%d's deployment to finish", n), func() bool {
		ds, err := ps.st.DeploymentsByProject(ps.ctx, ps.project.ID, 50)
		if err != nil {
			ps.t.Fatal(err)
		}
		for _, d := range ds {
			if d.Environment == store.PreviewEnvironment(n) && d.Status == store.DeploymentSuccess && d.StartedAt.Valid {
				job = d.FinishedAt.Time.Sub(d.StartedAt.Time)
				return true
			}
		}
		return false
	})
	return job
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
