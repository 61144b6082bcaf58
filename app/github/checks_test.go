package github_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stagely/stagely/app/github"
)

// patchBody is what the tests read back from the PATCH requests the Sim recorded.
type patchBody struct {
	Status     *string `json:"status"`
	Conclusion *string `json:"conclusion"`
	Output     *struct {
		Text        *string           `json:"text"`
		Annotations []json.RawMessage `json:"annotations"`
	} `json:"output"`
}

func TestCompleteCheckRun_SendsAnnotationsInBatchesBeforeTheConclusion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	id := f.checkRun(t, github.NewCheckRun{
		Name: "Stagely / deploy", HeadSHA: f.sha2, ExternalID: "dep-42", DetailsURL: "https://stagely.example/d/42",
		Status: "in_progress", StartedAt: time.Now().Add(-time.Minute), Title: "Deploying", Summary: "Deploying `" + f.sha2[:7] + "`",
	})
	var anns []github.Annotation
	for i := range 120 {
		anns = append(anns, github.Annotation{Path: "compose.yaml", StartLine: i + 1, Level: "failure", Title: "problem", Message: fmt.Sprintf("problem %d", i)})
	}
	var log strings.Builder
	for i := 0; log.Len() < 200_000; i++ {
		fmt.Fprintf(&log, "line %06d of the build output\n", i)
	}
	text := log.String()[:200_000]
	lastLine := text[strings.LastIndexByte(text[:len(text)-1], '\n')+1:]
	err := in.CompleteCheckRun(ctx, repoWeb, id, github.CheckRunResult{
		Conclusion: "failure", Title: "Rolled back: web unhealthy", Summary: "summary", Text: text, Annotations: anns,
		Actions: []github.Action{{Label: "Redeploy", Description: "Deploy this commit again", Identifier: "redeploy"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	runs := f.sim.CheckRuns(repoWeb, f.sha2)
	if len(runs) != 1 {
		t.Fatalf("%d check runs, want 1", len(runs))
	}
	run := runs[0]
	if run.Status != "completed" || run.Conclusion != "failure" || len(run.Annotations) != 120 || run.Title != "Rolled back: web unhealthy" {
		t.Fatalf("check run: status %s conclusion %s, %d annotations, title %q", run.Status, run.Conclusion, len(run.Annotations), run.Title)
	}
	for i, a := range run.Annotations {
		if a.Message != fmt.Sprintf("problem %d", i) {
			t.Fatalf("annotation %d is %q: order lost", i, a.Message)
		}
	}
	if run.ExternalID != "dep-42" || run.DetailsURL != "https://stagely.example/d/42" || len(run.Actions) != 1 {
		t.Fatalf("check run lost external id, details url or actions: %+v", run)
	}
	if n := utf8.RuneCountInString(run.Text); n > github.MaxOutputChars {
		t.Fatalf("text is %d characters, over GitHub's %d", n, github.MaxOutputChars)
	}
	if !strings.HasSuffix(run.Text, lastLine) || !strings.HasPrefix(run.Text, "… ") {
		t.Fatalf("text does not keep the tail behind an omission line: starts %q, ends %q", run.Text[:40], run.Text[len(run.Text)-40:])
	}

	patches := f.sim.CallsMatching(http.MethodPatch, "/repos/acme/web/check-runs/*")
	if len(patches) != 3 {
		t.Fatalf("%d PATCH calls, want 3 (50 + 50 + 20 annotations)", len(patches))
	}
	for i, c := range patches {
		var body patchBody
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Output == nil || len(body.Output.Annotations) > github.MaxAnnotationsPerRequest {
			t.Fatalf("PATCH %d carried %d annotations", i, len(body.Output.Annotations))
		}
		final := i == len(patches)-1
		if got := body.Conclusion != nil || body.Status != nil; got != final {
			t.Fatalf("PATCH %d of %d carries status/conclusion = %v; only the last may complete the run", i+1, len(patches), got)
		}
		if got := body.Output.Text != nil; got != final {
			t.Fatalf("PATCH %d of %d carries the text = %v; only the last should", i+1, len(patches), got)
		}
	}
}

func TestCompleteCheckRun_FewAnnotationsGoInOneRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.checkRun(t, github.NewCheckRun{Name: "Stagely / validate", HeadSHA: f.sha1})
	err := f.installation().CompleteCheckRun(ctx, repoWeb, id, github.CheckRunResult{
		Conclusion: "success", Title: "Valid", Summary: "ok",
		Annotations: []github.Annotation{
			{Path: "stagely.yaml", StartLine: 3, StartColumn: 5, EndColumn: 9, Level: "warning", Message: "one line, columns kept"},
			{Path: "stagely.yaml", StartLine: 3, EndLine: 6, StartColumn: 5, EndColumn: 9, Level: "notice", Message: "several lines, columns dropped"},
			{Path: "compose.yaml", StartLine: 1, Level: "notice", Title: strings.Repeat("t", 300), Message: strings.Repeat("m", 70_000)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.wantRequests(t, http.MethodPatch, "/repos/acme/web/check-runs/*", 1)
	run := f.sim.CheckRuns(repoWeb, f.sha1)[0]
	if run.Conclusion != "success" || len(run.Annotations) != 3 {
		t.Fatalf("run %s with %d annotations", run.Conclusion, len(run.Annotations))
	}
	one, multi, long := run.Annotations[0], run.Annotations[1], run.Annotations[2]
	if one.StartColumn == nil || *one.StartColumn != 5 || *one.EndColumn != 9 {
		t.Fatalf("single-line annotation lost its columns: %+v", one)
	}
	if multi.StartColumn != nil || multi.EndColumn != nil || *multi.EndLine != 6 {
		t.Fatalf("multi-line annotation kept columns: %+v", multi)
	}
	if utf8.RuneCountInString(*long.Title) > 255 || len(long.Message) > 64*1024 {
		t.Fatalf("annotation title %d characters, message %d bytes: over GitHub's limits", utf8.RuneCountInString(*long.Title), len(long.Message))
	}
}

func TestCompleteCheckRun_RefusesOurOwnBugsBeforeSendingAnything(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.checkRun(t, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: f.sha1, Status: "in_progress"})
	ok := github.CheckRunResult{Conclusion: "success", Title: "t", Summary: "s"}
	tests := []struct {
		name   string
		change func(*github.CheckRunResult)
		want   string
	}{
		{"unknown conclusion", func(r *github.CheckRunResult) { r.Conclusion = "stale" }, "conclusion"},
		{"four actions", func(r *github.CheckRunResult) {
			r.Actions = make([]github.Action, 4)
			for i := range r.Actions {
				r.Actions[i] = github.Action{Label: "a", Description: "b", Identifier: fmt.Sprint(i)}
			}
		}, "at most 3"},
		{"label over 20", func(r *github.CheckRunResult) {
			r.Actions = []github.Action{{Label: "Redeploy this commit now", Description: "d", Identifier: "redeploy"}}
		}, "label"},
		{"description over 40", func(r *github.CheckRunResult) {
			r.Actions = []github.Action{{Label: "Roll back", Description: strings.Repeat("d", 41), Identifier: "rollback"}}
		}, "description"},
		{"identifier over 20", func(r *github.CheckRunResult) {
			r.Actions = []github.Action{{Label: "Roll back", Description: "d", Identifier: strings.Repeat("i", 21)}}
		}, "identifier"},
		{"unknown annotation level", func(r *github.CheckRunResult) {
			r.Annotations = []github.Annotation{{Path: "a", StartLine: 1, Level: "error", Message: "m"}}
		}, "level"},
		{"annotation without message", func(r *github.CheckRunResult) {
			r.Annotations = []github.Annotation{{Path: "a", StartLine: 1, Level: "notice"}}
		}, "message"},
		{"annotation ending before it starts", func(r *github.CheckRunResult) {
			r.Annotations = []github.Annotation{{Path: "a", StartLine: 5, EndLine: 2, Level: "notice", Message: "m"}}
		}, "lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := ok
			tt.change(&res)
			err := f.installation().CompleteCheckRun(ctx, repoWeb, id, res)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CompleteCheckRun error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		f.wantRequests(t, http.MethodPatch, "/repos/*/*/check-runs/*", 0)
	})
}

func TestUpdateCheckRun_ChangesOutputWhileRunning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.checkRun(t, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: f.sha1})
	if err := f.installation().UpdateCheckRun(ctx, repoWeb, id, github.CheckRunUpdate{Status: "in_progress", Title: "Building", Summary: "Pulling images"}); err != nil {
		t.Fatal(err)
	}
	run := f.sim.CheckRuns(repoWeb, f.sha1)[0]
	if run.Status != "in_progress" || run.Title != "Building" || run.Summary != "Pulling images" || run.Name != "Stagely / deploy" {
		t.Fatalf("after update: %+v", run)
	}
	if err := f.installation().UpdateCheckRun(ctx, repoWeb, id, github.CheckRunUpdate{Status: "completed"}); err == nil {
		t.Fatal("UpdateCheckRun accepted status completed; completing is CompleteCheckRun's job")
	}
}
