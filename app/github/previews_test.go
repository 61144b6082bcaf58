package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/githubsim"
)

// openPR opens pull request number on repoWeb from a new branch; the fixture has no webhook
// URL, so the Sim only records it.
func (f *fixture) openPR(t *testing.T, number int) {
	t.Helper()
	ctx := context.Background()
	branch := fmt.Sprintf("feature-%d", number)
	if _, err := f.sim.Commit(ctx, repoWeb, branch, map[string][]byte{"compose.yaml": []byte("services: {}\n")}, "feature"); err != nil {
		t.Fatal(err)
	}
	_, err := f.sim.SendPullRequest(ctx, repoWeb, "opened", githubsim.PullRequest{Number: number, Head: branch})
	if err != nil && !errors.Is(err, githubsim.ErrNoWebhookURL) {
		t.Fatal(err)
	}
}

func TestIssueComment_IsCreatedThenUpdatedInPlace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openPR(t, 7)
	ctx := context.Background()
	in := f.installation()
	id, err := in.CreateIssueComment(ctx, repoWeb, 7, "<!-- stagely:preview -->\nPreview: https://web--pr-7.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.UpdateIssueComment(ctx, repoWeb, id, "<!-- stagely:preview -->\nPreview (new push): https://web--pr-7.example"); err != nil {
		t.Fatal(err)
	}
	got := f.sim.IssueComments(repoWeb, 7)
	if len(got) != 1 || got[0].ID != id || !strings.Contains(got[0].Body, "new push") || got[0].Author != f.sim.AppSlug()+"[bot]" {
		t.Fatalf("comments on #7 = %+v, want the one comment %d, updated, by the App", got, id)
	}
	found, err := in.FindIssueComment(ctx, repoWeb, 7, "<!-- stagely:preview -->")
	if err != nil || found != id {
		t.Fatalf("find the App's comment = %d %v, want %d", found, err, id)
	}
	if _, err := in.FindIssueComment(ctx, repoWeb, 7, "<!-- other -->"); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("find with a marker no comment has: %v, want ErrNotFound", err)
	}
	if _, err := in.CreateIssueComment(ctx, repoWeb, 99, "no such pull request"); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("comment on a pull request GitHub does not have: %v, want ErrNotFound", err)
	}
}

func TestIssueComment_ADeletedCommentIsReportedSoTheCallerCreatesAnother(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openPR(t, 7)
	ctx := context.Background()
	in := f.installation()
	id, err := in.CreateIssueComment(ctx, repoWeb, 7, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sim.DeleteIssueComment(repoWeb, id); err != nil {
		t.Fatal(err)
	}
	err = in.UpdateIssueComment(ctx, repoWeb, id, "second")
	if !errors.Is(err, github.ErrCommentNotFound) || !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("update of a deleted comment: %v, want ErrCommentNotFound", err)
	}
	if _, err := in.FindIssueComment(ctx, repoWeb, 7, "first"); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("find a deleted comment: %v, want ErrNotFound", err)
	}
	f.wantRequests(t, http.MethodPatch, "/repos/*/*/issues/comments/*", 1) // a 404 is not retried
}

// TestIssueComment_WithoutThePermissionSaysWhatTheOwnerMustAccept: an installation made before
// Stagely asked for pull_requests: write answers 403 until its owner accepts the new permission.
func TestIssueComment_WithoutThePermissionSaysWhatTheOwnerMustAccept(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openPR(t, 7)
	ctx := context.Background()
	old := map[string]string{"checks": "write", "contents": "read", "deployments": "write", "metadata": "read", "pull_requests": "read", "statuses": "write"}
	if err := f.sim.SetInstallationPermissions(f.inst, old); err != nil {
		t.Fatal(err)
	}
	_, err := f.installation().CreateIssueComment(ctx, repoWeb, 7, "Preview")
	if !errors.Is(err, github.ErrPermissionNotGranted) {
		t.Fatalf("comment without pull_requests: write: %v, want ErrPermissionNotGranted", err)
	}
	for _, want := range []string{"issues=write; pull_requests=write", "pull_requests: write", "accept"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, github.ErrNotFound) || errors.Is(err, github.ErrRateLimited) {
		t.Errorf("a missing permission reads as another failure: %v", err)
	}
	if n := len(f.sim.IssueComments(repoWeb, 7)); n != 0 {
		t.Fatalf("%d comments made without the permission", n)
	}
}

func TestIssueComment_A502NeverCommentsTwice(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied: %v", applied), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.openPR(t, 7)
			if _, err := f.sim.AddFault(githubsim.Fault{Method: http.MethodPost, Path: "/repos/*/*/issues/*/comments", Kind: githubsim.FaultBadGateway, Applied: applied, Times: 1}); err != nil {
				t.Fatal(err)
			}
			id, err := f.installation().CreateIssueComment(context.Background(), repoWeb, 7, "Preview")
			if err != nil {
				t.Fatalf("after one 502: %v", err)
			}
			got := f.sim.IssueComments(repoWeb, 7)
			if len(got) != 1 || got[0].ID != id {
				t.Fatalf("comments = %+v, want exactly one, %d", got, id)
			}
		})
	}
}

func TestHasWriteAccess_CountsWriteMaintainAndAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.sim.AddUser("alice")
	for _, tt := range []struct {
		role string
		want bool
	}{{"admin", true}, {"maintain", true}, {"write", true}, {"triage", false}, {"read", false}, {"none", false}} {
		if err := f.sim.SetRepoRole(repoWeb, "alice", tt.role); err != nil {
			t.Fatal(err)
		}
		if got, err := f.installation().HasWriteAccess(ctx, repoWeb, "alice"); err != nil || got != tt.want {
			t.Errorf("role %s: write access %v %v, want %v", tt.role, got, err, tt.want)
		}
	}
	f.sim.AddUser("mallory") // known to GitHub, no role on the repository
	if got, err := f.installation().HasWriteAccess(ctx, repoWeb, "mallory"); err != nil || got {
		t.Errorf("a user without a role: %v %v, want false", got, err)
	}
	if got, err := f.installation().HasWriteAccess(ctx, repoWeb, "nobody-at-all"); err != nil || got {
		t.Errorf("a login GitHub does not know: %v %v, want false, nil", got, err)
	}
	if err := f.sim.SetRepoRole(repoWeb, "alice", "write"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.AddFault(githubsim.Fault{Method: http.MethodGet, Path: "/repos/*/*/collaborators/*/permission", Kind: githubsim.FaultBadGateway, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.installation().HasWriteAccess(ctx, repoWeb, "alice"); err != nil || !got {
		t.Errorf("after a 502 the read is retried: %v %v, want true", got, err)
	}
}

func TestCheckRunActions_AreSetOnCreateReplacedOnUpdateAndRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	id := f.checkRun(t, github.NewCheckRun{
		Name: "Stagely / preview", HeadSHA: f.sha2, ExternalID: "preview-7", Title: "Waiting for approval",
		Summary: "A pull request from a fork is deployed once someone with write access presses the button.",
		Actions: []github.Action{github.DeployPreviewAction},
	})
	actionsOf := func() []githubsim.Action {
		for _, r := range f.sim.CheckRuns(repoWeb, f.sha2) {
			if r.ID == id {
				return r.Actions
			}
		}
		t.Fatalf("check run %d is gone", id)
		return nil
	}
	want := []githubsim.Action{{Label: "Deploy preview", Description: "Deploy this pull request's head", Identifier: "deploy_preview"}}
	if got := actionsOf(); !slices.Equal(got, want) {
		t.Fatalf("actions after create = %+v, want %+v", got, want)
	}
	if err := in.UpdateCheckRun(ctx, repoWeb, id, github.CheckRunUpdate{Status: "in_progress"}); err != nil {
		t.Fatal(err)
	}
	if got := actionsOf(); !slices.Equal(got, want) {
		t.Fatalf("an update without actions changed them: %+v", got)
	}
	if err := in.UpdateCheckRun(ctx, repoWeb, id, github.CheckRunUpdate{Actions: []github.Action{}}); err != nil {
		t.Fatal(err)
	}
	if got := actionsOf(); len(got) != 0 {
		t.Fatalf("actions after removing them = %+v", got)
	}
}

func TestCheckRunActions_OverGitHubsLimitsAreRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ok := github.Action{Label: "Deploy preview", Description: "d", Identifier: "deploy_preview"}
	for _, tt := range []struct {
		name    string
		actions []github.Action
	}{
		{"four actions", []github.Action{ok, ok, ok, ok}},
		{"a 21-character label", []github.Action{{Label: strings.Repeat("l", 21), Description: "d", Identifier: "i"}}},
		{"a 41-character description", []github.Action{{Label: "l", Description: strings.Repeat("d", 41), Identifier: "i"}}},
		{"a 21-character identifier", []github.Action{{Label: "l", Description: "d", Identifier: strings.Repeat("i", 21)}}},
		{"an empty label", []github.Action{{Description: "d", Identifier: "i"}}},
	} {
		_, err := f.installation().CreateCheckRun(ctx, repoWeb, github.NewCheckRun{Name: "Stagely / preview", HeadSHA: f.sha2, Actions: tt.actions})
		if err == nil {
			t.Errorf("%s: created", tt.name)
		}
		if err := f.installation().UpdateCheckRun(ctx, repoWeb, 1, github.CheckRunUpdate{Actions: tt.actions}); err == nil {
			t.Errorf("%s: updated", tt.name)
		}
	}
	f.wantRequests(t, http.MethodPost, "/repos/*/*/check-runs", 0)
	f.wantRequests(t, http.MethodPatch, "/repos/*/*/check-runs/*", 0)
}

// TestPreviewDeployment_IsTransientAndOnlyMarkedInactiveByHand: GitHub's auto_inactive skips
// transient deployments, and production's success never touches a preview's environment.
func TestPreviewDeployment_IsTransientAndOnlyMarkedInactiveByHand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	env := github.PreviewEnvironment(7)
	if env != "preview/pr-7" {
		t.Fatalf("PreviewEnvironment(7) = %q", env)
	}
	first, err := in.CreateDeployment(ctx, repoWeb, github.NewDeployment{Ref: f.sha1, Environment: env, Transient: true, Payload: map[string]any{"preview": 1}})
	if err != nil {
		t.Fatal(err)
	}
	success := github.DeploymentStatus{State: "success", EnvironmentURL: "https://web--pr-7.example", AutoInactive: true}
	if err := in.CreateDeploymentStatus(ctx, repoWeb, first, success); err != nil {
		t.Fatal(err)
	}
	second, err := in.CreateDeployment(ctx, repoWeb, github.NewDeployment{Ref: f.sha2, Environment: env, Transient: true, Payload: map[string]any{"preview": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.CreateDeploymentStatus(ctx, repoWeb, second, success); err != nil {
		t.Fatal(err)
	}
	prod, err := in.CreateDeployment(ctx, repoWeb, github.NewDeployment{Ref: f.sha2, Environment: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.CreateDeploymentStatus(ctx, repoWeb, prod, github.DeploymentStatus{State: "success", AutoInactive: true}); err != nil {
		t.Fatal(err)
	}
	latest := func(id int64) githubsim.DeploymentStatus {
		st := f.sim.DeploymentStatuses(repoWeb, id)
		return st[len(st)-1]
	}
	if s := latest(first); s.State != "success" {
		t.Fatalf("the earlier preview deployment's state = %s: auto_inactive must skip transient deployments", s.State)
	}
	for _, d := range f.sim.Deployments(repoWeb) {
		if d.ID == first && (!d.TransientEnvironment || d.ProductionEnvironment || d.Environment != env) {
			t.Fatalf("preview deployment = %+v, want transient, not production, in %s", d, env)
		}
	}
	if err := in.CreateDeploymentStatus(ctx, repoWeb, first, github.DeploymentStatus{State: "inactive", Description: "Replaced by a newer push"}); err != nil {
		t.Fatal(err)
	}
	if err := in.CreateDeploymentStatus(ctx, repoWeb, second, github.DeploymentStatus{State: "inactive", Description: "Pull request closed"}); err != nil {
		t.Fatal(err)
	}
	if latest(first).State != "inactive" || latest(second).State != "inactive" || latest(prod).State != "success" {
		t.Fatalf("states: first %s, second %s, production %s", latest(first).State, latest(second).State, latest(prod).State)
	}
	if s := latest(second); s.Environment != env {
		t.Fatalf("inactive status environment = %q, want %q", s.Environment, env)
	}
}

func TestPullRequest_ReadsWhetherItIsOpenAndWhereItsHeadIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	fork, err := f.sim.Fork(repoWeb, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	sha, err := f.sim.Commit(ctx, fork, "patch", map[string][]byte{"compose.yaml": []byte("services: {x: {}}\n")}, "patch")
	if err != nil {
		t.Fatal(err)
	}
	send := func(action string, pr githubsim.PullRequest) {
		t.Helper()
		pr.Number, pr.Head, pr.HeadRepo = 8, "patch", fork
		if _, err := f.sim.SendPullRequest(ctx, repoWeb, action, pr); err != nil && !errors.Is(err, githubsim.ErrNoWebhookURL) {
			t.Fatal(err)
		}
	}
	send("opened", githubsim.PullRequest{})
	got, err := in.PullRequest(ctx, repoWeb, 8)
	want := github.PullRequestState{Number: 8, Open: true, HeadSHA: sha, HeadRef: "patch", HeadRepoFullName: fork, AuthorLogin: "mallory"}
	if err != nil || got != want || !got.FromFork(repoWeb) {
		t.Fatalf("open fork pull request = %+v %v, want %+v from a fork", got, err, want)
	}
	send("closed", githubsim.PullRequest{HeadRepoDeleted: true, Sender: "acme"})
	got, err = in.PullRequest(ctx, repoWeb, 8)
	if err != nil || got.Open || got.Merged || got.HeadRepoFullName != "" || !got.FromFork(repoWeb) {
		t.Fatalf("closed pull request of a deleted fork = %+v %v", got, err)
	}
	if _, err := in.PullRequest(ctx, repoWeb, 80); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("a pull request GitHub does not have: %v, want ErrNotFound", err)
	}
	f.openPR(t, 9)
	if got, err := in.PullRequest(ctx, repoWeb, 9); err != nil || got.FromFork(repoWeb) || !got.Open {
		t.Fatalf("a branch's pull request = %+v %v", got, err)
	}
}
