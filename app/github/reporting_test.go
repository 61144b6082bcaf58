package github_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stagely/stagely/app/github"
)

func TestCreateStatus_CutsLongDescriptionsToWhatGitHubAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name, description string
	}{
		{"300 ASCII characters", strings.Repeat("a", 300)},
		{"300 accented characters (2 bytes each)", strings.Repeat("é", 300)},
		{"emoji (two UTF-16 units each)", strings.Repeat("🚀", 150)},
		{"short", "Deploying a1b2c3d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := f.installation().CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{
				State: "pending", Context: "stagely/" + tt.name, Description: tt.description, TargetURL: "https://stagely.example/d/1",
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(func() {
		got := f.sim.Statuses(repoWeb, f.sha1)
		if len(got) != len(tests) {
			t.Fatalf("%d statuses stored, want %d", len(got), len(tests))
		}
		for _, st := range got {
			if n := utf8.RuneCountInString(st.Description); n > github.MaxDescriptionChars {
				t.Errorf("%s: description is %d characters", st.Context, n)
			}
			if st.TargetURL != "https://stagely.example/d/1" || st.State != "pending" {
				t.Errorf("%s: stored %+v", st.Context, st)
			}
			if st.Context != "stagely/short" && !strings.HasSuffix(st.Description, "…") {
				t.Errorf("%s: cut description %q does not end in …", st.Context, st.Description)
			}
		}
	})
}

func TestCreateStatus_DefaultsToTheDeployContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.installation().CreateStatus(context.Background(), repoWeb, f.sha1, github.CommitStatus{State: "success", Description: "Deployed"}); err != nil {
		t.Fatal(err)
	}
	if got := f.sim.Statuses(repoWeb, f.sha1); len(got) != 1 || got[0].Context != "stagely/deploy" {
		t.Fatalf("statuses = %+v, want one under stagely/deploy", got)
	}
	if err := f.installation().CreateStatus(context.Background(), repoWeb, f.sha1, github.CommitStatus{State: "done"}); err == nil {
		t.Fatal("CreateStatus accepted state done")
	}
}

func TestCreateDeployment_BypassesRequiredContextsAndTakesStatuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	// A pending status on the commit: without required_contexts: [] GitHub would answer 409.
	if err := in.CreateStatus(ctx, repoWeb, f.sha2, github.CommitStatus{State: "pending", Description: "Deploying"}); err != nil {
		t.Fatal(err)
	}
	id, err := in.CreateDeployment(ctx, repoWeb, github.NewDeployment{
		Ref: f.sha2, Environment: "web-prod", Description: strings.Repeat("d", 200), Payload: map[string]any{"stagely_deployment_id": 42},
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []github.DeploymentStatus{
		{State: "queued", Description: "Waiting for the agent"},
		{State: "in_progress", Description: strings.Repeat("x", 300), LogURL: "https://stagely.example/d/42/logs"},
		{State: "success", Description: "Deployed", LogURL: "https://stagely.example/d/42/logs", EnvironmentURL: "https://web.example", AutoInactive: true},
	}
	for _, st := range steps {
		if err := in.CreateDeploymentStatus(ctx, repoWeb, id, st); err != nil {
			t.Fatalf("status %s: %v", st.State, err)
		}
	}
	deps := f.sim.Deployments(repoWeb)
	if len(deps) != 1 {
		t.Fatalf("%d deployments, want 1", len(deps))
	}
	d := deps[0]
	if d.ID != id || d.SHA != f.sha2 || d.Environment != "web-prod" || d.RequiredContexts == nil || len(d.RequiredContexts) != 0 || d.Task != "deploy" {
		t.Fatalf("deployment = %+v", d)
	}
	if p, _ := d.Payload.(map[string]any); p["stagely_deployment_id"] != float64(42) {
		t.Fatalf("payload = %#v", d.Payload)
	}
	if len(d.Statuses) != 3 || d.Statuses[2].State != "success" || d.Statuses[2].EnvironmentURL != "https://web.example" || d.Statuses[1].TargetURL != "https://stagely.example/d/42/logs" {
		t.Fatalf("statuses = %+v", d.Statuses)
	}
	if n := utf8.RuneCountInString(d.Statuses[1].Description); n > github.MaxDescriptionChars {
		t.Fatalf("status description is %d characters", n)
	}
	var sent map[string]any
	if err := json.Unmarshal(f.sim.CallsMatching(http.MethodPost, "/repos/acme/web/deployments")[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["auto_merge"] != false {
		t.Fatalf("auto_merge sent as %v, want false", sent["auto_merge"])
	}
}

func TestCreateDeploymentStatus_RefusesUnknownStates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.installation().CreateDeploymentStatus(context.Background(), repoWeb, 1, github.DeploymentStatus{State: "rolled_back"}); err == nil {
		t.Fatal("CreateDeploymentStatus accepted state rolled_back")
	}
}
