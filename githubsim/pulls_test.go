package githubsim_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stagely/stagely/githubsim"
)

// openPR opens pull request number on repoWeb, first committing its head branch when it is a
// branch of repoWeb that does not exist yet, and returns the event's payload.
func (f *fixture) openPR(t *testing.T, number int, pr githubsim.PullRequest) map[string]any {
	t.Helper()
	pr.Number = number
	if pr.HeadRepo == "" && f.sim.Branch(repoWeb, pr.Head) == "" {
		if _, err := f.sim.Commit(context.Background(), repoWeb, pr.Head, map[string][]byte{"a": []byte("b")}, pr.Head); err != nil {
			t.Fatal(err)
		}
	}
	d, err := f.sim.SendPullRequest(context.Background(), repoWeb, "opened", pr)
	if err != nil {
		t.Fatal(err)
	}
	return jsonMap(t, d.Body)
}

func TestIssueComments_NeedIssuesOrPullRequestsWrite(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		perms  map[string]string
		status int
	}{
		{map[string]string{"metadata": "read", "pull_requests": "write"}, http.StatusCreated},
		{map[string]string{"metadata": "read", "issues": "write"}, http.StatusCreated},
		{map[string]string{"metadata": "read", "pull_requests": "read", "issues": "read"}, http.StatusForbidden},
		{map[string]string{"metadata": "read", "checks": "write"}, http.StatusForbidden},
	} {
		t.Run(fmt.Sprint(tt.perms), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.receive(t, http.StatusOK)
			f.openPR(t, 4, githubsim.PullRequest{Head: "feature"})
			perms := map[string]string{"metadata": "read", "issues": "write", "pull_requests": "write", "checks": "write"}
			if err := f.sim.SetInstallationPermissions(f.inst, perms); err != nil {
				t.Fatal(err)
			}
			auth := "Bearer " + f.installationToken(t, map[string]any{"permissions": tt.perms})
			resp, b := f.do(t, http.MethodPost, "repos/acme/web/issues/4/comments", auth, map[string]string{"body": "Preview ready"})
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == http.StatusForbidden {
				if got := resp.Header.Get("X-Accepted-GitHub-Permissions"); got != "issues=write; pull_requests=write" {
					t.Errorf("X-Accepted-GitHub-Permissions = %q", got)
				}
				if len(f.sim.IssueComments(repoWeb, 4)) != 0 {
					t.Error("a refused comment was kept")
				}
			}
		})
	}
}

func TestIssueComments_AnswerLikeGitHub(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.receive(t, http.StatusOK)
	f.openPR(t, 4, githubsim.PullRequest{Head: "feature"})
	auth := "Bearer " + f.installationToken(t, nil)
	for _, tt := range []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"a pull request GitHub does not have", http.MethodPost, "repos/acme/web/issues/5/comments", map[string]string{"body": "x"}, http.StatusNotFound},
		{"no body", http.MethodPost, "repos/acme/web/issues/4/comments", map[string]string{}, http.StatusUnprocessableEntity},
		{"a body over 65536 characters", http.MethodPost, "repos/acme/web/issues/4/comments", map[string]string{"body": strings.Repeat("é", 65537)}, http.StatusUnprocessableEntity},
		{"a comment that does not exist", http.MethodPatch, "repos/acme/web/issues/comments/42", map[string]string{"body": "x"}, http.StatusNotFound},
		{"a comment id that is not a number", http.MethodGet, "repos/acme/web/issues/comments/comments", nil, http.StatusNotFound},
		{"a body of exactly 65536 characters", http.MethodPost, "repos/acme/web/issues/4/comments", map[string]string{"body": strings.Repeat("é", 65536)}, http.StatusCreated},
	} {
		if resp, b := f.do(t, tt.method, tt.path, auth, tt.body); resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, b, tt.status)
		}
	}
	// A comment in one repository is not reachable through another.
	id := f.sim.IssueComments(repoWeb, 4)[0].ID
	if resp, _ := f.do(t, http.MethodGet, fmt.Sprintf("repos/acme/other/issues/comments/%d", id), auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("comment read through another repository: %d", resp.StatusCode)
	}
	resp, b := f.do(t, http.MethodGet, fmt.Sprintf("repos/acme/web/issues/comments/%d", id), auth, nil)
	c := jsonMap(t, b)
	app, _ := c["performed_via_github_app"].(map[string]any)
	user, _ := c["user"].(map[string]any)
	if resp.StatusCode != http.StatusOK || app["id"] != float64(f.sim.AppID()) || user["type"] != "Bot" || user["login"] != f.sim.AppSlug()+"[bot]" {
		t.Errorf("comment = %d %s", resp.StatusCode, b)
	}
}

func TestFork_IsOutsideTheInstallationButItsPullRequestHeadIsReadable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.receive(t, http.StatusOK)
	ctx := context.Background()
	before := len(f.sim.Deliveries())
	fork, err := f.sim.Fork(repoWeb, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	if fork != "mallory/web" || f.sim.Branch(fork, "main") != f.sha2 {
		t.Fatalf("fork %s with main at %s, want mallory/web at %s", fork, f.sim.Branch(fork, "main"), f.sha2)
	}
	if _, err := f.sim.Fork(repoWeb, "mallory"); err == nil {
		t.Error("forked twice under one owner")
	}
	sha, err := f.sim.Commit(ctx, fork, "patch", map[string][]byte{"compose.yaml": []byte("services: {evil: {}}\n")}, "patch")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.sim.Deliveries()) - before; n != 0 {
		t.Fatalf("%d webhooks for a push to a fork the App is not installed on", n)
	}
	auth := "Bearer " + f.installationToken(t, nil)
	if resp, _ := f.do(t, http.MethodGet, "repos/mallory/web", auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the installation reads the fork: %d", resp.StatusCode)
	}
	if resp, _ := f.do(t, http.MethodGet, "repos/acme/web/commits/"+sha, auth, nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("the fork's commit is in the base repository before any pull request: %d", resp.StatusCode)
	}
	p := f.openPR(t, 12, githubsim.PullRequest{Head: "patch", HeadRepo: fork})
	pr := p["pull_request"].(map[string]any)
	head := pr["head"].(map[string]any)
	if head["sha"] != sha || head["label"] != "mallory:patch" || head["repo"].(map[string]any)["full_name"] != fork ||
		head["repo"].(map[string]any)["fork"] != true || pr["user"].(map[string]any)["login"] != "mallory" ||
		pr["author_association"] != "FIRST_TIME_CONTRIBUTOR" || p["sender"].(map[string]any)["login"] != "mallory" {
		t.Fatalf("fork pull request = %v", pr)
	}
	if resp, b := f.do(t, http.MethodGet, "repos/acme/web/commits/"+sha, auth, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the pull request's head through the base repository: %d %s", resp.StatusCode, b)
	}
	if _, err := f.sim.SendPullRequest(ctx, repoWeb, "opened", githubsim.PullRequest{Number: 13, Head: "patch", HeadRepo: "acme/other"}); err == nil {
		t.Error("a pull request from a repository that is not a fork of the base was sent")
	}
}

func TestPullRequest_KeepsItsStateAcrossEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.receive(t, http.StatusOK)
	ctx := context.Background()
	first, err := f.sim.Commit(ctx, repoWeb, "feature", map[string][]byte{"a": []byte("1")}, "one")
	if err != nil {
		t.Fatal(err)
	}
	f.sim.AddUser("alice")
	if err := f.sim.SetRepoRole(repoWeb, "alice", "write"); err != nil {
		t.Fatal(err)
	}
	opened := f.openPR(t, 5, githubsim.PullRequest{Head: "feature", Author: "alice"})
	if got := opened["pull_request"].(map[string]any)["author_association"]; got != "COLLABORATOR" {
		t.Errorf("association of a user with a role = %v, want COLLABORATOR", got)
	}
	second, err := f.sim.Commit(ctx, repoWeb, "feature", map[string][]byte{"a": []byte("2")}, "two")
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.sim.SendPullRequest(ctx, repoWeb, "synchronize", githubsim.PullRequest{Number: 5, Head: "feature", Author: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if p := jsonMap(t, d.Body); p["before"] != first || p["after"] != second {
		t.Errorf("synchronize before %v after %v, want %s → %s", p["before"], p["after"], first, second)
	}
	// An open pull request of the repository itself is on its head's check runs; a closed one is not.
	auth := "Bearer " + f.installationToken(t, nil)
	resp, b := f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth, map[string]any{"name": "Stagely / preview", "head_sha": second})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	run := jsonMap(t, b)
	prs, _ := run["pull_requests"].([]any)
	if len(prs) != 1 || prs[0].(map[string]any)["number"] != float64(5) {
		t.Errorf("check run pull_requests = %v, want #5", run["pull_requests"])
	}
	d, err = f.sim.SendPullRequest(ctx, repoWeb, "closed", githubsim.PullRequest{Number: 5, Head: "feature", Author: "alice", Sender: "acme", Merged: true})
	if err != nil {
		t.Fatal(err)
	}
	pr := jsonMap(t, d.Body)["pull_request"].(map[string]any)
	if pr["state"] != "closed" || pr["merged"] != true || pr["merged_at"] == nil || pr["user"].(map[string]any)["login"] != "alice" {
		t.Errorf("closed as merged = state %v merged %v at %v by %v", pr["state"], pr["merged"], pr["merged_at"], pr["user"])
	}
	resp, b = f.do(t, http.MethodGet, "repos/acme/web/pulls/5", auth, nil)
	if got := jsonMap(t, b); resp.StatusCode != http.StatusOK || got["state"] != "closed" || got["merged"] != true ||
		got["merged_by"].(map[string]any)["login"] != "acme" || got["head"].(map[string]any)["sha"] != second {
		t.Errorf("GET the merged pull request: %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(t, http.MethodGet, "repos/acme/web/pulls/6", auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a pull request never sent: %d", resp.StatusCode)
	}
	resp, b = f.do(t, http.MethodGet, fmt.Sprintf("repos/acme/web/check-runs/%d", int64(run["id"].(float64))), auth, nil)
	if prs, _ := jsonMap(t, b)["pull_requests"].([]any); resp.StatusCode != http.StatusOK || len(prs) != 0 {
		t.Errorf("a closed pull request is still on its check run: %s", b)
	}
}

func TestPressCheckRunButton_SendsWhoPressedIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.receive(t, http.StatusOK)
	auth := "Bearer " + f.installationToken(t, nil)
	resp, b := f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth, map[string]any{
		"name": "Stagely / preview", "head_sha": f.sha2, "conclusion": "action_required",
		"output":  map[string]string{"title": "Waiting for approval", "summary": "From a fork"},
		"actions": []any{map[string]string{"label": "Deploy preview", "description": "Deploy this pull request's head", "identifier": "deploy_preview"}},
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	id := int64(jsonMap(t, b)["id"].(float64))
	f.sim.AddUser("alice")
	d, err := f.sim.PressCheckRunButton(context.Background(), repoWeb, id, "deploy_preview", "alice")
	if err != nil {
		t.Fatal(err)
	}
	p := jsonMap(t, d.Body)
	if p["action"] != "requested_action" || p["sender"].(map[string]any)["login"] != "alice" ||
		p["requested_action"].(map[string]any)["identifier"] != "deploy_preview" {
		t.Fatalf("payload = %s", d.Body)
	}
	if _, err := f.sim.PressCheckRunButton(context.Background(), repoWeb, id, "redeploy", "alice"); err == nil {
		t.Error("a button the run does not have was pressed")
	}
}
