package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/store"
)

// servedVersion is the agent version the test server serves.
const servedVersion = "v9.9.9"

// recordingUpdates is the hub's self-update part the API uses.
type recordingUpdates struct {
	latest string
	calls  recordtest.List[string]
}

func (r *recordingUpdates) LatestAgentVersion() string { return r.latest }

func (r *recordingUpdates) SetAutoUpdate(agentID int64, on bool) {
	r.calls.Add(fmt.Sprintf("%d %t", agentID, on))
}

type agentUpdateView struct {
	ID            int64  `json:"id"`
	Version       string `json:"version"`
	AutoUpdate    bool   `json:"auto_update"`
	LatestVersion string `json:"latest_version"`
	VersionStatus string `json:"version_status"`
}

func TestAgents_ShowVersionStatusAndSwitchAutoUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn("alice")
	e.signIn("bob")
	var created struct{ Agent agentUpdateView }
	e.must(201, "POST", "/api/agents", "alice", map[string]any{"name": "prod"}, &created)
	if a := created.Agent; !a.AutoUpdate || a.LatestVersion != servedVersion || a.VersionStatus != "unknown" {
		t.Fatalf("new agent = %+v; want auto-update on and version unknown before its first HELLO", a)
	}
	id := created.Agent.ID

	status := func(version string) string {
		t.Helper()
		if err := e.st.MarkAgentConnected(t.Context(), id, store.AgentHello{Version: version}, time.Now()); err != nil {
			t.Fatal(err)
		}
		var list []agentUpdateView
		e.must(200, "GET", "/api/agents", "alice", nil, &list)
		if len(list) != 1 {
			t.Fatalf("agents = %+v", list)
		}
		return list[0].VersionStatus
	}
	if got := status("v1.0.0"); got != "outdated" {
		t.Errorf("older agent: version_status %q, want outdated", got)
	}
	if got := status("dev"); got != "unknown" {
		t.Errorf("development build: version_status %q, want unknown (it is never updated)", got)
	}
	if got := status(servedVersion); got != "current" {
		t.Errorf("agent on the served build: version_status %q, want current", got)
	}

	var patched agentUpdateView
	e.must(200, "PATCH", fmt.Sprintf("/api/agents/%d", id), "alice", map[string]any{"auto_update": false}, &patched)
	if patched.AutoUpdate {
		t.Fatalf("after switching off: %+v", patched)
	}
	if a, err := e.st.AgentByID(t.Context(), id); err != nil || a.AutoUpdate {
		t.Fatalf("stored agent %+v, %v", a, err)
	}
	if got := e.updates.calls.All(); len(got) != 1 || got[0] != fmt.Sprintf("%d false", id) {
		t.Fatalf("hub told %q, want the switch for agent %d", got, id)
	}

	// Someone else's agent is not found; a body without the field is refused.
	e.must(http.StatusNotFound, "PATCH", fmt.Sprintf("/api/agents/%d", id), "bob", map[string]any{"auto_update": true}, nil)
	e.must(http.StatusBadRequest, "PATCH", fmt.Sprintf("/api/agents/%d", id), "alice", map[string]any{}, nil)
	e.must(http.StatusBadRequest, "PATCH", fmt.Sprintf("/api/agents/%d", id), "alice", map[string]any{"auto_update": "yes"}, nil)
	if a, _ := e.st.AgentByID(t.Context(), id); a.AutoUpdate {
		t.Fatal("a refused request changed the switch")
	}
}
