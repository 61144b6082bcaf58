package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/githubsim"
)

// TestWrites_A502NeverWritesTwice: GitHub can answer 502 to a write it carried out. Each
// write Stagely makes is then checked against what GitHub holds before it is sent again, so
// it lands exactly once whether the 502 came before or after GitHub applied it.
func TestWrites_A502NeverWritesTwice(t *testing.T) {
	t.Parallel()
	writes := []struct {
		name    string
		method  string
		path    string
		write   func(ctx context.Context, f *fixture, in *github.Installation, depID int64) (int64, error)
		created func(f *fixture, depID int64) []int64
	}{
		{"create check run", http.MethodPost, "/repos/*/*/check-runs",
			func(ctx context.Context, f *fixture, in *github.Installation, _ int64) (int64, error) {
				return in.CreateCheckRun(ctx, repoWeb, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: f.sha2, ExternalID: "7", Title: "Queued", Summary: "queued"})
			},
			func(f *fixture, _ int64) []int64 {
				return idsOf(f.sim.CheckRuns(repoWeb, f.sha2), func(r githubsim.CheckRun) int64 { return r.ID })
			}},
		{"create commit status", http.MethodPost, "/repos/*/*/statuses/*",
			func(ctx context.Context, f *fixture, in *github.Installation, _ int64) (int64, error) {
				return 0, in.CreateStatus(ctx, repoWeb, f.sha2, github.CommitStatus{State: "pending", Description: "Queued", TargetURL: "https://stagely.example/d/7"})
			},
			func(f *fixture, _ int64) []int64 {
				return idsOf(f.sim.Statuses(repoWeb, f.sha2), func(s githubsim.Status) int64 { return s.ID })
			}},
		{"create deployment", http.MethodPost, "/repos/*/*/deployments",
			func(ctx context.Context, f *fixture, in *github.Installation, _ int64) (int64, error) {
				return in.CreateDeployment(ctx, repoWeb, github.NewDeployment{Ref: f.sha2, Environment: "web", Description: "Stagely deployment #7", Payload: map[string]any{"stagely_deployment": "7"}})
			},
			func(f *fixture, _ int64) []int64 {
				web := slices.DeleteFunc(f.sim.Deployments(repoWeb), func(d githubsim.Deployment) bool { return d.Environment != "web" })
				return idsOf(web, func(d githubsim.Deployment) int64 { return d.ID })
			}},
		{"create deployment status", http.MethodPost, "/repos/*/*/deployments/*/statuses",
			func(ctx context.Context, f *fixture, in *github.Installation, depID int64) (int64, error) {
				return 0, in.CreateDeploymentStatus(ctx, repoWeb, depID, github.DeploymentStatus{State: "queued", Description: "Queued", LogURL: "https://stagely.example/d/7"})
			},
			func(f *fixture, depID int64) []int64 {
				return idsOf(f.sim.DeploymentStatuses(repoWeb, depID), func(s githubsim.DeploymentStatus) int64 { return s.ID })
			}},
	}
	for _, w := range writes {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s after a 502 (applied: %v)", w.name, applied), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				ctx := context.Background()
				in := f.installation()
				// Another environment's deployment, for the deployment status to go on.
				depID, err := in.CreateDeployment(ctx, repoWeb, github.NewDeployment{Ref: f.sha2, Environment: "other"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.sim.AddFault(githubsim.Fault{Method: w.method, Path: w.path, Kind: githubsim.FaultBadGateway, Applied: applied, Times: 1}); err != nil {
					t.Fatal(err)
				}
				id, err := w.write(ctx, f, in, depID)
				if err != nil {
					t.Fatalf("after one 502: %v", err)
				}
				got := w.created(f, depID)
				if len(got) != 1 {
					t.Fatalf("GitHub holds %d of them, want exactly 1", len(got))
				}
				if id != 0 && id != got[0] {
					t.Fatalf("returned id %d, GitHub's is %d", id, got[0])
				}
			})
		}
	}
}

// TestWrites_A502AmidAnnotationBatchesAppendsEachOnce: annotations append on GitHub, so a
// batch GitHub applied before answering 502 must not be sent again.
func TestWrites_A502AmidAnnotationBatchesAppendsEachOnce(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied: %v", applied), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := context.Background()
			in := f.installation()
			id, err := in.CreateCheckRun(ctx, repoWeb, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: f.sha2, ExternalID: "9"})
			if err != nil {
				t.Fatal(err)
			}
			var anns []github.Annotation
			for i := range 120 {
				anns = append(anns, github.Annotation{Path: "compose.yaml", StartLine: i + 1, Level: "failure", Message: fmt.Sprintf("problem %d", i)})
			}
			// The first PATCH carries the first batch of 50.
			if _, err := f.sim.AddFault(githubsim.Fault{Method: http.MethodPatch, Path: "/repos/*/*/check-runs/*", Kind: githubsim.FaultBadGateway, Applied: applied, Times: 1}); err != nil {
				t.Fatal(err)
			}
			if err := in.CompleteCheckRun(ctx, repoWeb, id, github.CheckRunResult{Conclusion: "failure", Title: "Failed", Summary: "s", Annotations: anns}); err != nil {
				t.Fatal(err)
			}
			runs := f.sim.CheckRuns(repoWeb, f.sha2)
			if len(runs) != 1 || runs[0].Conclusion != "failure" || len(runs[0].Annotations) != 120 {
				t.Fatalf("check run %s with %d annotations, want failure with 120", runs[0].Conclusion, len(runs[0].Annotations))
			}
			for i, a := range runs[0].Annotations {
				if a.Message != fmt.Sprintf("problem %d", i) {
					t.Fatalf("annotation %d is %q", i, a.Message)
				}
			}
		})
	}
}

// TestWrites_ALookupThatFailsStopsTheWrite: when GitHub cannot say whether it holds a write it
// answered 502, the write is not sent blind; the caller gets the 502, a passing failure.
func TestWrites_ALookupThatFailsStopsTheWrite(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, func(o *github.Options) { o.MaxRetries = 2 })
	ctx := context.Background()
	in := f.installation()
	for _, fault := range []githubsim.Fault{
		{Method: http.MethodPost, Path: "/repos/*/*/statuses/*", Kind: githubsim.FaultBadGateway, Applied: true, Times: 1},
		{Method: http.MethodGet, Path: "/repos/*/*/commits/*/statuses", Kind: githubsim.FaultBadGateway},
	} {
		if _, err := f.sim.AddFault(fault); err != nil {
			t.Fatal(err)
		}
	}
	err := in.CreateStatus(ctx, repoWeb, f.sha2, github.CommitStatus{State: "success", Description: "Deployed"})
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway || errors.Is(err, github.ErrNotFound) {
		t.Fatalf("CreateStatus error = %v, want the 502", err)
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, "/repos/*/*/statuses/*")); n != 1 {
		t.Fatalf("%d POSTs, want 1: the second would be blind", n)
	}
	if got := f.sim.Statuses(repoWeb, f.sha2); len(got) != 1 {
		t.Fatalf("%d statuses stored, want the one GitHub applied", len(got))
	}
}

// idsOf lists the ids of what GitHub holds, in its order.
func idsOf[T any](xs []T, id func(T) int64) []int64 {
	var ids []int64
	for _, x := range xs {
		ids = append(ids, id(x))
	}
	return ids
}
