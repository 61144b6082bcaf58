package githubsim_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/githubsim"
)

func TestFault_AnswersLikeGitHubAndCountsDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      githubsim.Fault
		wantStatus int
		wantStored int // statuses the Sim holds after the faulted call
		retryAfter string
		message    string
	}{
		{"502 refused before the write", githubsim.Fault{Kind: githubsim.FaultBadGateway}, 502, 0, "", "Bad Gateway"},
		{"502 after the write was applied", githubsim.Fault{Kind: githubsim.FaultBadGateway, Applied: true}, 502, 1, "", "Bad Gateway"},
		{"403 secondary rate limit asks for a minute by default", githubsim.Fault{Kind: githubsim.FaultSecondaryLimit}, 403, 0, "60", "secondary rate limit"},
		{"429 secondary rate limit with the given Retry-After", githubsim.Fault{Kind: githubsim.FaultTooManyRequests, RetryAfter: 2 * time.Second}, 429, 0, "2", "secondary rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			auth := "Bearer " + f.installationToken(t, nil)
			tt.fault.Method, tt.fault.Path, tt.fault.Times = http.MethodPost, "/repos/*/*/statuses/*", 1
			if _, err := f.sim.AddFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			resp, b := f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth, map[string]any{"state": "pending", "context": "c"})
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.retryAfter || !strings.Contains(string(b), tt.message) {
				t.Fatalf("answer %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
			if got := len(f.sim.Statuses(repoWeb, f.sha2)); got != tt.wantStored {
				t.Fatalf("the Sim holds %d statuses, want %d", got, tt.wantStored)
			}
			calls := f.sim.CallsMatching(http.MethodPost, "/repos/*/*/statuses/*")
			if len(calls) != 1 || !calls[0].Faulted || calls[0].Status != tt.wantStatus {
				t.Fatalf("recorded %+v", calls)
			}
			// Times: 1 is used up: the same call now goes through.
			if resp, b := f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth, map[string]any{"state": "pending", "context": "c"}); resp.StatusCode != 201 {
				t.Fatalf("after the fault: %d %s", resp.StatusCode, b)
			}
		})
	}
}

func TestFault_LastsForItsPeriodOrUntilRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	get := func() int {
		resp, _ := f.do(t, http.MethodGet, "repos/acme/web/commits/main", auth, nil)
		return resp.StatusCode
	}
	if _, err := f.sim.AddFault(githubsim.Fault{Path: "/repos/acme/web/commits/*", Kind: githubsim.FaultBadGateway, For: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != 502 {
		t.Fatalf("during the period: %d", got)
	}
	f.clock.Advance(time.Minute)
	if got := get(); got != 200 {
		t.Fatalf("after the period: %d", got)
	}
	id, err := f.sim.AddFault(githubsim.Fault{Path: "/repos/acme/web/commits/*", Kind: githubsim.FaultSecondaryLimit})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := get(); got != 403 {
			t.Fatalf("until removed: %d", got)
		}
	}
	f.sim.RemoveFault(id)
	if got := get(); got != 200 {
		t.Fatalf("after RemoveFault: %d", got)
	}
	if _, err := f.sim.AddFault(githubsim.Fault{Path: "/x", Kind: githubsim.FaultSecondaryLimit, Applied: true}); err == nil {
		t.Fatal("an applied rate limit was accepted: GitHub never carries out a call it limits")
	}
}

func TestRepoRole_DecidesWhatTheUserSeesAndThePermissionEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sim.AddUser("alice")
	if err := f.sim.AddInstallationMember(f.inst, "alice"); err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + f.installationToken(t, nil)
	permission := func(login string) (int, map[string]any) {
		resp, b := f.do(t, http.MethodGet, "repos/acme/web/collaborators/"+login+"/permission", auth, nil)
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		return resp.StatusCode, jsonMap(t, b)
	}
	for _, tt := range []struct{ role, permission string }{
		{"", "write"}, // a member of the installation's organization
		{"admin", "admin"}, {"maintain", "write"}, {"write", "write"},
		{"triage", "read"}, {"read", "read"}, {"none", "none"},
	} {
		if tt.role != "" {
			if err := f.sim.SetRepoRole(repoWeb, "alice", tt.role); err != nil {
				t.Fatal(err)
			}
		}
		status, body := permission("alice")
		if status != 200 || body["permission"] != tt.permission {
			t.Fatalf("role %q: %d %v, want permission %s", tt.role, status, body, tt.permission)
		}
		user, _ := body["user"].(map[string]any)
		if user["login"] != "alice" || user["role_name"] == nil {
			t.Fatalf("role %q: user %v", tt.role, user)
		}
	}
	// The user's own listing shows the same roles: acme/web is hidden at none, acme/other
	// (no role set: a member writes) carries push.
	f.sim.SetAuthorizeAs("alice")
	tok := oauthToken(t, f, "https://stagely.example/auth/github/callback")
	resp, b := f.do(t, http.MethodGet, "user/installations/"+strconv.FormatInt(f.inst, 10)+"/repositories", "Bearer "+tok, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("user repositories: %d %s", resp.StatusCode, b)
	}
	repos, _ := jsonMap(t, b)["repositories"].([]any)
	if len(repos) != 1 {
		t.Fatalf("alice with role none on acme/web sees %d repositories, want acme/other only", len(repos))
	}
	other := repos[0].(map[string]any)
	if perms, _ := other["permissions"].(map[string]any); other["full_name"] != repoOther || perms["push"] != true || perms["admin"] != false {
		t.Fatalf("listed %v", other)
	}
	if status, _ := permission("nobody-here"); status != 404 {
		t.Fatalf("unknown user: %d", status)
	}
	if err := f.sim.SetRepoRole(repoWeb, "alice", "owner"); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}

func TestLagBranch_RefReadsAnswerTheOldHeadForAWhile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	read := func() string {
		resp, b := f.do(t, http.MethodGet, "repos/acme/web/git/ref/heads/main", auth, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("get ref: %d %s", resp.StatusCode, b)
		}
		return jsonMap(t, b)["object"].(map[string]any)["sha"].(string)
	}
	if err := f.sim.LagBranch(repoWeb, "main", f.sha1, 2); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{f.sha1, f.sha1, f.sha2} {
		if got := read(); got != want {
			t.Fatalf("read %d = %s, want %s", i+1, got[:7], want[:7])
		}
	}
	if resp, _ := f.do(t, http.MethodGet, "repos/acme/web/git/ref/heads/nope", auth, nil); resp.StatusCode != 404 {
		t.Fatalf("missing branch: %d", resp.StatusCode)
	}
}
