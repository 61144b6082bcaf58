package webhook_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/webhook"
)

func conformancePayload(t *testing.T, event, name string) []byte {
	t.Helper()
	return readFile(t, filepath.Join(conformanceDir(t), "webhooks", event, name))
}

// variant changes a copy of a published payload, for shapes GitHub documents
// but did not publish an example of.
func variant(t *testing.T, body []byte, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("parse payload: %v", err)
	}
	change(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal variant: %v", err)
	}
	return out
}

func decodeAs[T webhook.Event](t *testing.T, event string, body []byte) T {
	t.Helper()
	ev, err := webhook.Decode(event, body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got, ok := ev.(T)
	if !ok {
		t.Fatalf("Decode returned %T", ev)
	}
	return got
}

func TestDecode_PushWithIntegerRepositoryTimestamps(t *testing.T) {
	t.Parallel()
	p := decodeAs[webhook.Push](t, "push", conformancePayload(t, "push", "probot.push.json"))
	check(t, "Branch()", p.Branch(), "bkeepers-patch-3")
	check(t, "IsTag()", p.IsTag(), false)
	check(t, "IsBranchDeletion()", p.IsBranchDeletion(), false)
	check(t, "InstallationID", p.InstallationID, int64(1729))
	check(t, "HeadCommit.ID", p.HeadCommit.ID, "738a951dba49dfec487000ef85ae80291d7ab32a")
	check(t, "HeadCommit.Author.Username", p.HeadCommit.Author.Username, "bkeepers")
	check(t, "Repo.Owner", p.Repo.Owner, "bkeepers-inc")
	check(t, "Repo.DefaultBranch", p.Repo.DefaultBranch, "master")
}

func TestDecode_TagDeletionHasNoHeadCommitAndIsNotABranch(t *testing.T) {
	t.Parallel()
	p := decodeAs[webhook.Push](t, "push", conformancePayload(t, "push", "payload.json"))
	check(t, "IsTag()", p.IsTag(), true)
	check(t, "Deleted", p.Deleted, true)
	check(t, "Branch()", p.Branch(), "")
	check(t, "IsBranchDeletion()", p.IsBranchDeletion(), false)
	check(t, "HeadCommit.ID", p.HeadCommit.ID, "")
	check(t, "Commits", len(p.Commits), 0)
	check(t, "InstallationID (no installation object)", p.InstallationID, int64(0))
	check(t, "After", p.After, "0000000000000000000000000000000000000000")
}

func TestDecode_BranchDeletionIsReported(t *testing.T) {
	t.Parallel()
	// GitHub publishes no branch-deletion example; a tag deletion has the same shape.
	body := variant(t, conformancePayload(t, "push", "payload.json"), func(m map[string]any) {
		m["ref"] = "refs/heads/feature/login"
	})
	p := decodeAs[webhook.Push](t, "push", body)
	check(t, "Branch()", p.Branch(), "feature/login")
	check(t, "IsTag()", p.IsTag(), false)
	check(t, "IsBranchDeletion()", p.IsBranchDeletion(), true)
}

func TestDecode_NewBranchPushIsABranchPush(t *testing.T) {
	t.Parallel()
	p := decodeAs[webhook.Push](t, "push", conformancePayload(t, "push", "with-new-branch.payload.json"))
	check(t, "Created", p.Created, true)
	check(t, "Branch()", p.Branch(), "master")
	check(t, "IsBranchDeletion()", p.IsBranchDeletion(), false)
	if p.HeadCommit.ID == "" || p.HeadCommit.ID != p.After {
		t.Errorf("HeadCommit.ID = %q, want After %q", p.HeadCommit.ID, p.After)
	}
}

func TestDecode_LegacyTimestampLayoutIsAccepted(t *testing.T) {
	t.Parallel()
	body := variant(t, conformancePayload(t, "installation", "suspend.payload.json"), func(m map[string]any) {
		m["installation"].(map[string]any)["suspended_at"] = "2021-04-29 02:32:50"
	})
	i := decodeAs[webhook.Installation](t, "installation", body)
	want := time.Date(2021, 4, 29, 2, 32, 50, 0, time.UTC)
	if !i.SuspendedAt.Equal(want) {
		t.Fatalf("SuspendedAt = %v, want %v", i.SuspendedAt, want)
	}
	check(t, "Suspended()", i.Suspended(), true)
}

func TestDecode_CheckRunButtonIdentifier(t *testing.T) {
	t.Parallel()
	c := decodeAs[webhook.CheckRun](t, "check_run", conformancePayload(t, "check_run", "requested_action.payload.json"))
	check(t, "Action", c.Action, "requested_action")
	if c.RequestedActionIdentifier == "" {
		t.Fatalf("RequestedActionIdentifier is empty")
	}
}

func TestDecode_UnhandledEventsAreNotErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event string
		body  string
		want  webhook.Unhandled
	}{
		{"EventWithAction", "issues", `{"action":"opened","issue":{"number":1}}`, webhook.Unhandled{Event: "issues", Action: "opened"}},
		{"EventWithoutAction", "create", `{"ref":"v1","ref_type":"tag"}`, webhook.Unhandled{Event: "create", Action: ""}},
		{"EventGoGitHubDoesNotKnow", "some_future_event", `{"action":"did_a_thing"}`, webhook.Unhandled{Event: "some_future_event", Action: "did_a_thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := decodeAs[webhook.Unhandled](t, tt.event, []byte(tt.body))
			check(t, "Unhandled", got, tt.want)
			check(t, "EventName()", got.EventName(), tt.event)
		})
	}
}

func TestDecode_MalformedPayloadsAreInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event string
		body  string
	}{
		{"PushTruncatedJSON", "push", `{"ref":"refs/heads/main","after":`},
		{"PushWrongFieldType", "push", `{"ref":5}`},
		{"PushEmptyObject", "push", `{}`},
		{"PushNull", "push", `null`},
		{"PushWithoutRepository", "push", `{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`},
		{"PushTrailingGarbage", "push", `{"ref":"refs/heads/main"} x`},
		{"PullRequestWithoutHeadSHA", "pull_request", `{"action":"opened","number":1,"pull_request":{},"repository":{"id":1,"full_name":"o/r"}}`},
		{"PullRequestNotJSON", "pull_request", `<html>`},
		{"CheckRunWithoutID", "check_run", `{"action":"rerequested","check_run":{"head_sha":"abc"},"repository":{"id":1,"full_name":"o/r"}}`},
		{"CheckSuiteArray", "check_suite", `[]`},
		{"InstallationWithoutInstallation", "installation", `{"action":"created"}`},
		{"InstallationRepositoriesWithoutAction", "installation_repositories", `{"installation":{"id":1}}`},
		{"PingNotJSON", "ping", `zen`},
		{"UnhandledEventNotJSON", "issues", `{`},
		{"Empty", "push", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := webhook.Decode(tt.event, []byte(tt.body))
			if !errors.Is(err, webhook.ErrPayloadMalformed) {
				t.Fatalf("Decode = %v, %v; want ErrPayloadMalformed", ev, err)
			}
			if got := webhook.KindOf(err); got != webhook.KindInvalid {
				t.Fatalf("KindOf = %s, want invalid", got)
			}
		})
	}
}

func TestDecode_PingWithoutHookIDFallsBackToHookObject(t *testing.T) {
	t.Parallel()
	p := decodeAs[webhook.Ping](t, "ping", []byte(`{"zen":"z","hook":{"id":42,"type":"App","app_id":7}}`))
	check(t, "Ping", p, webhook.Ping{Zen: "z", HookID: 42, HookType: "App", AppID: 7})
}

func TestRoute_ReadsTheTopLevelFactsOrSaysThePayloadIsMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    webhook.Route
		invalid bool
	}{
		{"repository event", `{"action":"opened","installation":{"id":7},"repository":{"id":42,"full_name":"acme/site"}}`,
			webhook.Route{Event: "e", Action: "opened", InstallationID: 7, RepoID: 42, RepoFullName: "acme/site"}, false},
		{"installation event names no repository", `{"action":"created","installation":{"id":7},"repositories":[{"id":42}]}`,
			webhook.Route{Event: "e", Action: "created", InstallationID: 7}, false},
		{"repository webhook names no installation", `{"ref":"refs/heads/main","repository":{"id":42,"full_name":"acme/site"}}`,
			webhook.Route{Event: "e", RepoID: 42, RepoFullName: "acme/site"}, false},
		{"null installation and repository", `{"installation":null,"repository":null}`, webhook.Route{Event: "e"}, false},
		{"JSON null", `null`, webhook.Route{Event: "e"}, false},
		{"not JSON", `payload=%7B%7D`, webhook.Route{Event: "e"}, true},
		{"an array", `[]`, webhook.Route{Event: "e"}, true},
		{"action of the wrong type", `{"action":1}`, webhook.Route{Event: "e"}, true},
		{"repository id of the wrong type", `{"repository":{"id":"42"}}`, webhook.Route{Event: "e"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhook.Delivery{Event: "e", Body: []byte(tt.body)}.Route()
			if tt.invalid != errors.Is(err, webhook.ErrPayloadMalformed) {
				t.Fatalf("err = %v, want ErrPayloadMalformed: %v", err, tt.invalid)
			}
			if tt.invalid && webhook.KindOf(err) != webhook.KindInvalid {
				t.Fatalf("kind %s, want %s", webhook.KindOf(err), webhook.KindInvalid)
			}
			check(t, "Route()", got, tt.want)
		})
	}
}

func TestPush_ChangedFilesOnlyWhenThePayloadCanTell(t *testing.T) {
	t.Parallel()
	before, after := strings.Repeat("a", 40), strings.Repeat("b", 40)
	zero := strings.Repeat("0", 40)
	two := []webhook.Commit{
		{ID: "1", Added: []string{"services/api/new.go"}, Modified: []string{"README.md"}},
		{ID: "2", Modified: []string{"README.md"}, Removed: []string{"services/web/old.js"}},
	}
	many := make([]webhook.Commit, webhook.TrustedPushCommits)
	tests := []struct {
		name   string
		push   webhook.Push
		want   []string
		wantOK bool
	}{
		{"files of every commit, each once", webhook.Push{Before: before, After: after, Commits: two},
			[]string{"services/api/new.go", "README.md", "services/web/old.js"}, true},
		{"a commit that changed nothing", webhook.Push{Before: before, After: after, Commits: []webhook.Commit{{ID: "1"}}}, nil, true},
		{"new branch", webhook.Push{Before: zero, After: after, Created: true, Commits: two}, nil, false},
		{"forced push", webhook.Push{Before: before, After: after, Forced: true, Commits: two}, nil, false},
		{"a list GitHub may have cut", webhook.Push{Before: before, After: after, Commits: many}, nil, false},
		{"no commits listed", webhook.Push{Before: before, After: after}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.push.ChangedFiles()
			if ok != tt.wantOK || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("ChangedFiles() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
