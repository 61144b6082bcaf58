package webhook_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/webhook"
)

// The published payloads in shared/conformance, one folder per X-GitHub-Event value.
var conformanceEvents = []string{
	"check_run", "check_suite", "installation", "installation_repositories", "ping", "pull_request", "push",
}

func TestConformance_EveryPublishedPayloadIsReadAndDecoded(t *testing.T) {
	t.Parallel()
	files := conformancePayloads(t)

	// A partial copy of shared/ must fail loudly rather than test less.
	const published = 82
	if len(files) < published {
		t.Fatalf("found %d payloads under the conformance dir, want at least %d", len(files), published)
	}
	perEvent := map[string]int{}
	for _, f := range files {
		perEvent[f.Event]++
	}
	for _, ev := range conformanceEvents {
		if perEvent[ev] == 0 {
			t.Fatalf("no %s payloads in the conformance dir", ev)
		}
	}

	for i, f := range files {
		t.Run(f.Event+"/"+f.Name, func(t *testing.T) {
			t.Parallel()
			body := readFile(t, f.Path)
			id := fmt.Sprintf("72d3162e-cc78-11e3-81ab-%012x", i)

			d, err := webhook.ReadDelivery(deliveryRequest(f.Event, id, body), testSecret, 0)
			if err != nil {
				t.Fatalf("ReadDelivery: %v (kind %s)", err, webhook.KindOf(err))
			}
			check(t, "Delivery.ID", d.ID, id)
			check(t, "Delivery.Event", d.Event, f.Event)
			check(t, "Delivery.HookID", d.HookID, int64(292430182))
			check(t, "Delivery.InstallationTargetID", d.InstallationTargetID, int64(79929171))
			check(t, "Delivery.InstallationTargetType", d.InstallationTargetType, "integration")
			if !bytes.Equal(d.Body, body) {
				t.Fatalf("Delivery.Body differs from the bytes sent")
			}

			ev, err := webhook.Decode(d.Event, d.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			check(t, "EventName()", ev.EventName(), f.Event)
			p := parseDoc(t, body)
			assertMatchesPayload(t, ev, p)

			route, err := d.Route()
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			check(t, "Route()", route, webhook.Route{
				Event: f.Event, Action: p.get("action").str(), InstallationID: p.get("installation.id").int(t),
				RepoID: p.get("repository.id").int(t), RepoFullName: p.get("repository.full_name").str(),
			})
		})
	}
}

// assertMatchesPayload compares every field of ev with the JSON it was decoded from.
func assertMatchesPayload(t *testing.T, ev webhook.Event, p doc) {
	t.Helper()
	switch e := ev.(type) {
	case webhook.Push:
		check(t, "Ref", e.Ref, p.get("ref").str())
		check(t, "Before", e.Before, p.get("before").str())
		check(t, "After", e.After, p.get("after").str())
		check(t, "Created", e.Created, p.get("created").boolean())
		check(t, "Deleted", e.Deleted, p.get("deleted").boolean())
		check(t, "Forced", e.Forced, p.get("forced").boolean())
		check(t, "CompareURL", e.CompareURL, p.get("compare").str())
		check(t, "PusherName", e.PusherName, p.get("pusher.name").str())
		assertOrigin(t, p, e.Origin)
		assertPushCommits(t, p, e.Commits)
		if hc := p.get("head_commit"); hc.null() {
			check(t, "HeadCommit.ID", e.HeadCommit.ID, "")
		} else {
			check(t, "HeadCommit.ID", e.HeadCommit.ID, hc.get("id").str())
			check(t, "HeadCommit.Message", e.HeadCommit.Message, hc.get("message").str())
			check(t, "HeadCommit.Author.Name", e.HeadCommit.Author.Name, hc.get("author.name").str())
			check(t, "HeadCommit.Author.Email", e.HeadCommit.Author.Email, hc.get("author.email").str())
			check(t, "HeadCommit.Author.Username", e.HeadCommit.Author.Username, hc.get("author.username").str())
		}
		ref := p.get("ref").str()
		check(t, "IsTag()", e.IsTag(), strings.HasPrefix(ref, "refs/tags/"))
		if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			check(t, "Branch()", e.Branch(), branch)
		} else {
			check(t, "Branch()", e.Branch(), "")
		}
		check(t, "IsBranchDeletion()", e.IsBranchDeletion(),
			p.get("deleted").boolean() && strings.HasPrefix(ref, "refs/heads/"))

	case webhook.PullRequest:
		pr := p.get("pull_request")
		check(t, "Action", e.Action, p.get("action").str())
		check(t, "Number", int64(e.Number), p.get("number").int(t))
		check(t, "HeadSHA", e.HeadSHA, pr.get("head.sha").str())
		check(t, "HeadRef", e.HeadRef, pr.get("head.ref").str())
		check(t, "HeadRepoFullName", e.HeadRepoFullName, pr.get("head.repo.full_name").str())
		check(t, "BaseRef", e.BaseRef, pr.get("base.ref").str())
		check(t, "Draft", e.Draft, pr.get("draft").boolean())
		check(t, "AuthorLogin", e.AuthorLogin, pr.get("user.login").str())
		check(t, "AuthorAssociation", e.AuthorAssociation, pr.get("author_association").str())
		check(t, "Merged", e.Merged, pr.get("merged").boolean())
		check(t, "FromFork()", e.FromFork(), pr.get("head.repo").null() ||
			!strings.EqualFold(pr.get("head.repo.full_name").str(), p.get("repository.full_name").str()))
		assertOrigin(t, p, e.Origin)

	case webhook.CheckRun:
		run := p.get("check_run")
		check(t, "Action", e.Action, p.get("action").str())
		check(t, "CheckRunID", e.CheckRunID, run.get("id").int(t))
		check(t, "Name", e.Name, run.get("name").str())
		check(t, "HeadSHA", e.HeadSHA, run.get("head_sha").str())
		check(t, "ExternalID", e.ExternalID, run.get("external_id").str())
		check(t, "AppID", e.AppID, run.get("app.id").int(t))
		check(t, "CheckSuiteID", e.CheckSuiteID, run.get("check_suite.id").int(t))
		check(t, "RequestedActionIdentifier", e.RequestedActionIdentifier, p.get("requested_action.identifier").str())
		var numbers []int
		for _, pr := range run.get("pull_requests").list() {
			numbers = append(numbers, int(pr.get("number").int(t)))
		}
		check(t, "len(PullRequestNumbers)", len(e.PullRequestNumbers), len(numbers))
		for i := range min(len(numbers), len(e.PullRequestNumbers)) {
			check(t, "PullRequestNumbers[]", e.PullRequestNumbers[i], numbers[i])
		}
		assertOrigin(t, p, e.Origin)

	case webhook.CheckSuite:
		suite := p.get("check_suite")
		check(t, "Action", e.Action, p.get("action").str())
		check(t, "ID", e.ID, suite.get("id").int(t))
		check(t, "HeadSHA", e.HeadSHA, suite.get("head_sha").str())
		check(t, "HeadBranch", e.HeadBranch, suite.get("head_branch").str())
		check(t, "AppID", e.AppID, suite.get("app.id").int(t))
		assertOrigin(t, p, e.Origin)

	case webhook.Installation:
		inst := p.get("installation")
		check(t, "Action", e.Action, p.get("action").str())
		check(t, "ID", e.ID, inst.get("id").int(t))
		check(t, "AppID", e.AppID, inst.get("app_id").int(t))
		check(t, "AccountLogin", e.AccountLogin, inst.get("account.login").str())
		check(t, "AccountID", e.AccountID, inst.get("account.id").int(t))
		check(t, "AccountType", e.AccountType, inst.get("account.type").str())
		if at := inst.get("suspended_at"); at.null() {
			check(t, "Suspended()", e.Suspended(), false)
		} else {
			want, err := time.Parse(time.RFC3339, at.str())
			if err != nil {
				t.Fatalf("payload suspended_at: %v", err)
			}
			check(t, "SuspendedAt", e.SuspendedAt.Equal(want), true)
			check(t, "Suspended()", e.Suspended(), true)
		}
		assertRepoList(t, "Repositories", e.Repositories, p.get("repositories").list())

	case webhook.InstallationRepositories:
		check(t, "Action", e.Action, p.get("action").str())
		check(t, "InstallationID", e.InstallationID, p.get("installation.id").int(t))
		check(t, "Selection", e.Selection, p.get("repository_selection").str())
		assertRepoList(t, "Added", e.Added, p.get("repositories_added").list())
		assertRepoList(t, "Removed", e.Removed, p.get("repositories_removed").list())

	case webhook.Ping:
		check(t, "Zen", e.Zen, p.get("zen").str())
		check(t, "HookID", e.HookID, p.get("hook_id").int(t))
		check(t, "HookType", e.HookType, p.get("hook.type").str())
		check(t, "AppID", e.AppID, p.get("hook.app_id").int(t))

	default:
		t.Fatalf("decoded as %T, want one of the typed events", ev)
	}
}

// assertOrigin compares what every event about a repository carries with its payload:
// the installation, the sender and the repository.
func assertOrigin(t *testing.T, p doc, o webhook.Origin) {
	t.Helper()
	check(t, "InstallationID", o.InstallationID, p.get("installation.id").int(t))
	check(t, "SenderLogin", o.SenderLogin, p.get("sender.login").str())
	assertRepo(t, o.Repo, p.get("repository"))
}

func assertRepo(t *testing.T, got webhook.Repo, r doc) {
	t.Helper()
	if r.null() {
		t.Fatalf("payload has no repository")
	}
	check(t, "Repo.ID", got.ID, r.get("id").int(t))
	check(t, "Repo.FullName", got.FullName, r.get("full_name").str())
	check(t, "Repo.Name", got.Name, r.get("name").str())
	check(t, "Repo.Owner", got.Owner, r.get("owner.login").str())
	check(t, "Repo.DefaultBranch", got.DefaultBranch, r.get("default_branch").str())
}

func assertRepoList(t *testing.T, field string, got []webhook.Repo, want []doc) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len(%s) = %d, want %d", field, len(got), len(want))
	}
	for i, w := range want {
		check(t, fmt.Sprintf("%s[%d].ID", field, i), got[i].ID, w.get("id").int(t))
		check(t, fmt.Sprintf("%s[%d].FullName", field, i), got[i].FullName, w.get("full_name").str())
		check(t, fmt.Sprintf("%s[%d].Name", field, i), got[i].Name, w.get("name").str())
		owner, _, _ := strings.Cut(w.get("full_name").str(), "/")
		check(t, fmt.Sprintf("%s[%d].Owner", field, i), got[i].Owner, owner)
	}
}

// assertPushCommits checks the decoded commits, with the files each changed, against the payload.
func assertPushCommits(t *testing.T, p doc, got []webhook.Commit) {
	t.Helper()
	list, _ := p.get("commits").v.([]any)
	check(t, "len(Commits)", len(got), len(list))
	for i := 0; i < len(list) && i < len(got); i++ {
		c := doc{list[i]}
		check(t, "Commits[].ID", got[i].ID, c.get("id").str())
		for _, f := range []struct {
			name string
			got  []string
		}{{"added", got[i].Added}, {"removed", got[i].Removed}, {"modified", got[i].Modified}} {
			want, _ := c.get(f.name).v.([]any)
			check(t, "Commits[]."+f.name, len(f.got), len(want))
			for j := 0; j < len(want) && j < len(f.got); j++ {
				check(t, "Commits[]."+f.name+"[]", f.got[j], doc{want[j]}.str())
			}
		}
	}
}
