package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/webhook"
)

func decodePR(t *testing.T, body []byte) webhook.PullRequest {
	t.Helper()
	return decodeAs[webhook.PullRequest](t, webhook.EventPullRequest, body)
}

func TestPullRequest_TellsAForkAndWhoOpenedIt(t *testing.T) {
	t.Parallel()
	head := func(p map[string]any) map[string]any {
		return p["pull_request"].(map[string]any)["head"].(map[string]any)
	}
	for _, tt := range []struct {
		name       string
		change     func(p map[string]any)
		fork       bool
		headRepo   string
		author     string
		assoc      string
		merged     bool
		senderDiff bool
	}{
		{"a branch of the repository", func(map[string]any) {}, false, "Codertocat/Hello-World", "Codertocat", "OWNER", false, false},
		{"a fork", func(p map[string]any) {
			repo := head(p)["repo"].(map[string]any)
			repo["full_name"], repo["fork"] = "mallory/Hello-World", true
			pr := p["pull_request"].(map[string]any)
			pr["user"].(map[string]any)["login"] = "mallory"
			pr["author_association"] = "FIRST_TIME_CONTRIBUTOR"
		}, true, "mallory/Hello-World", "mallory", "FIRST_TIME_CONTRIBUTOR", false, true},
		{"a fork whose name differs only in case", func(p map[string]any) {
			head(p)["repo"].(map[string]any)["full_name"] = "codertocat/hello-world"
		}, false, "codertocat/hello-world", "Codertocat", "OWNER", false, false},
		{"a deleted fork (head.repo null)", func(p map[string]any) {
			head(p)["repo"] = nil
		}, true, "", "Codertocat", "OWNER", false, false},
		{"a merged pull request", func(p map[string]any) {
			p["pull_request"].(map[string]any)["merged"] = true
		}, false, "Codertocat/Hello-World", "Codertocat", "OWNER", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr := decodePR(t, variant(t, conformancePayload(t, "pull_request", "closed.payload.json"), tt.change))
			if pr.FromFork() != tt.fork || pr.HeadRepoFullName != tt.headRepo || pr.AuthorLogin != tt.author ||
				pr.AuthorAssociation != tt.assoc || pr.Merged != tt.merged {
				t.Fatalf("got fork %v, head repo %q, author %q (%s), merged %v; want %v, %q, %q (%s), %v",
					pr.FromFork(), pr.HeadRepoFullName, pr.AuthorLogin, pr.AuthorAssociation, pr.Merged,
					tt.fork, tt.headRepo, tt.author, tt.assoc, tt.merged)
			}
			if (pr.AuthorLogin != pr.SenderLogin) != tt.senderDiff {
				t.Fatalf("author %q, sender %q", pr.AuthorLogin, pr.SenderLogin)
			}
		})
	}
}

func TestCheckRun_ARequestedActionNamesTheButtonAndWhoPressedIt(t *testing.T) {
	t.Parallel()
	body := variant(t, conformancePayload(t, "check_run", "requested_action.payload.json"), func(p map[string]any) {
		p["requested_action"] = map[string]any{"identifier": "deploy_preview"}
		p["sender"].(map[string]any)["login"] = "alice"
	})
	run := decodeAs[webhook.CheckRun](t, webhook.EventCheckRun, body)
	if run.Action != "requested_action" || run.RequestedActionIdentifier != "deploy_preview" || run.SenderLogin != "alice" ||
		!slices.Equal(run.PullRequestNumbers, []int{26764}) {
		t.Fatalf("decoded %+v", run)
	}
}

// TestGithubsimPreviewEvents_DecodeAsGitHubsWould: the fork pull request and the button press
// githubsim sends for the preview tests read the same as GitHub's own payloads.
func TestGithubsimPreviewEvents_DecodeAsGitHubsWould(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := githubsim.New(githubsim.Options{})
	sim.Start()
	t.Cleanup(sim.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(hook.Close)
	sim.SetWebhookURL(hook.URL)
	inst := sim.AddInstallation("acme")
	if err := sim.CreateRepo(inst, "acme/web", "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Commit(ctx, "acme/web", "main", map[string][]byte{"compose.yaml": []byte("services: {}\n")}, "init"); err != nil {
		t.Fatal(err)
	}
	fork, err := sim.Fork("acme/web", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	sha, err := sim.Commit(ctx, fork, "patch", map[string][]byte{"compose.yaml": []byte("services: {x: {}}\n")}, "patch")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Deliveries()); n != 1 {
		t.Fatalf("%d deliveries after a push to a fork, want only main's first push", n)
	}
	d, err := sim.SendPullRequest(ctx, "acme/web", "opened", githubsim.PullRequest{Number: 3, Head: "patch", HeadRepo: fork})
	if err != nil {
		t.Fatal(err)
	}
	pr := decodePR(t, d.Body)
	if !pr.FromFork() || pr.HeadRepoFullName != "mallory/web" || pr.AuthorLogin != "mallory" || pr.SenderLogin != "mallory" ||
		pr.AuthorAssociation != "FIRST_TIME_CONTRIBUTOR" || pr.HeadSHA != sha || pr.HeadRef != "patch" || pr.Number != 3 || pr.Repo.FullName != "acme/web" {
		t.Fatalf("fork pull request decoded as %+v", pr)
	}
	d, err = sim.SendPullRequest(ctx, "acme/web", "closed", githubsim.PullRequest{Number: 3, Head: "patch", HeadRepo: fork, HeadRepoDeleted: true, Sender: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if pr := decodePR(t, d.Body); !pr.FromFork() || pr.HeadRepoFullName != "" || pr.Merged || pr.SenderLogin != "acme" || pr.AuthorLogin != "mallory" {
		t.Fatalf("closed pull request of a deleted fork decoded as %+v", pr)
	}
}
