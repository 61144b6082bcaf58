package githubsim_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/webhook/webhooktest"
)

func TestAppJWT_OnlyAValidAppJWTReachesApp(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := f.clock.Now()
	key := parseKey(t, f.sim.PrivateKeyPEM())
	id := strconv.FormatInt(f.sim.AppID(), 10)
	tests := []struct {
		name    string
		jwt     string
		status  int
		message string
	}{
		{"valid with app id", appJWT(t, key, id, now.Add(-time.Minute), now.Add(9*time.Minute)), 200, ""},
		{"valid with numeric iss", appJWT(t, key, f.sim.AppID(), now.Add(-time.Minute), now.Add(9*time.Minute)), 200, ""},
		{"valid with client id", appJWT(t, key, f.sim.ClientID(), now.Add(-time.Minute), now.Add(9*time.Minute)), 200, ""},
		{"wrong key", appJWT(t, otherKey(t), id, now.Add(-time.Minute), now.Add(9*time.Minute)), 401, "A JSON web token could not be decoded"},
		{"wrong issuer", appJWT(t, key, "42", now.Add(-time.Minute), now.Add(9*time.Minute)), 401, "A JSON web token could not be decoded"},
		{"expired", appJWT(t, key, id, now.Add(-15*time.Minute), now.Add(-5*time.Minute)), 401, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"},
		{"exp over 10 minutes ahead", appJWT(t, key, id, now.Add(-time.Minute), now.Add(20*time.Minute)), 401, "'Expiration time' claim ('exp') is too far in the future"},
		{"iat in the future", appJWT(t, key, id, now.Add(5*time.Minute), now.Add(9*time.Minute)), 401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"},
		{"not a JWT", "ghs_notajwt", 401, "A JSON web token could not be decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, http.MethodGet, "app", "Bearer "+tt.jwt, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if tt.message != "" {
				m := jsonMap(t, b)
				if m["message"] != tt.message || m["documentation_url"] == nil {
					t.Errorf("body %s, want message %q with documentation_url", b, tt.message)
				}
			}
		})
	}
}

func TestInstallationToken_LimitedToItsRepositoriesAndPermissions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	narrow := f.installationToken(t, map[string]any{"repositories": []string{"web"}, "permissions": map[string]string{"contents": "read", "metadata": "read"}})
	auth := "Bearer " + narrow
	if resp, b := f.do(t, http.MethodGet, "repos/acme/web/contents/compose.yaml", auth, nil); resp.StatusCode != 200 {
		t.Fatalf("own repository: %d %s", resp.StatusCode, b)
	}
	resp, b := f.do(t, http.MethodGet, "repos/acme/other", auth, nil)
	if resp.StatusCode != 404 || jsonMap(t, b)["message"] != "Not Found" || jsonMap(t, b)["status"] != "404" {
		t.Errorf("other repository: %d %s, want GitHub's 404", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth, map[string]any{"name": "x", "head_sha": f.sha2})
	if resp.StatusCode != 403 || jsonMap(t, b)["message"] != "Resource not accessible by integration" {
		t.Errorf("check run without checks permission: %d %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("X-Accepted-GitHub-Permissions"); got != "checks=write" {
		t.Errorf("X-Accepted-GitHub-Permissions = %q", got)
	}
	resp, b = f.do(t, http.MethodPost, "app/installations/"+strconv.FormatInt(f.inst, 10)+"/access_tokens", "Bearer "+f.jwt(t),
		map[string]any{"permissions": map[string]string{"administration": "write"}})
	if resp.StatusCode != 422 {
		t.Errorf("permission beyond the installation: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodPost, "app/installations/"+strconv.FormatInt(f.inst, 10)+"/access_tokens", "Bearer "+f.jwt(t),
		map[string]any{"repositories": []string{"nope"}})
	if resp.StatusCode != 422 {
		t.Errorf("unknown repository: %d %s", resp.StatusCode, b)
	}
	f.clock.Advance(61 * time.Minute)
	resp, b = f.do(t, http.MethodGet, "repos/acme/web", auth, nil)
	if resp.StatusCode != 401 || jsonMap(t, b)["message"] != "Bad credentials" {
		t.Errorf("token after one hour: %d %s", resp.StatusCode, b)
	}
	if n := len(f.sim.CallsWith(githubsim.CredentialInstallation)); n < 4 {
		t.Errorf("recorded %d installation-token calls", n)
	}
}

func TestTarball_RedirectsToAnotherHostWithOneTopFolderAndExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	resp, _ := doHTTP(t, noRedirect(), http.MethodGet, f.ep.API+"repos/acme/web/tarball/"+f.sha1, auth, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("tarball: %d, want 302", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if hostOf(t, loc) != hostOf(t, f.ep.Download) || hostOf(t, loc) == hostOf(t, f.ep.API) {
		t.Fatalf("Location %s is not on the download host %s", loc, f.ep.Download)
	}
	dl, err := http.Get(loc) // no Authorization: the URL itself is the credential
	if err != nil {
		t.Fatal(err)
	}
	if dl.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %d", loc, dl.StatusCode)
	}
	files, tops, comment := readTarball(t, dl.Body)
	dl.Body.Close()
	wantTop := "acme-web-" + f.sha1[:7]
	if !reflect.DeepEqual(tops, []string{wantTop}) {
		t.Errorf("top-level folders %v, want [%s]", tops, wantTop)
	}
	if comment != f.sha1 {
		t.Errorf("pax comment %q, want the commit sha", comment)
	}
	// The first commit keeps its own content after the second one changed it.
	if files["compose.yaml"] != "services:\n  web:\n    image: nginx\n" || files["app/static/a.txt"] != "first" {
		t.Errorf("files at first commit: %v", files)
	}
	f.clock.Advance(5*time.Minute + time.Second)
	late, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	late.Body.Close()
	if late.StatusCode != http.StatusNotFound {
		t.Errorf("expired download: %d, want 404", late.StatusCode)
	}
}

func readTarball(t *testing.T, r io.Reader) (map[string]string, []string, string) {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	topSet := map[string]bool{}
	comment := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			comment = h.PAXRecords["comment"]
			continue
		}
		top, rest, _ := strings.Cut(h.Name, "/")
		topSet[top] = true
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[rest] = string(b)
		}
	}
	var tops []string
	for k := range topSet {
		tops = append(tops, k)
	}
	sort.Strings(tops)
	return files, tops, comment
}

func TestCheckRun_PublishedLimitsAnswer422ValidationFailed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	ann := func(n int) []map[string]any {
		var out []map[string]any
		for i := range n {
			out = append(out, map[string]any{"path": "compose.yaml", "start_line": i + 1, "end_line": i + 1, "annotation_level": "notice", "message": "m"})
		}
		return out
	}
	action := func(label, desc, id string) map[string]string {
		return map[string]string{"label": label, "description": desc, "identifier": id}
	}
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"name": "Stagely / deploy", "head_sha": f.sha2}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"summary over 65535", base(map[string]any{"output": map[string]any{"title": "t", "summary": strings.Repeat("s", 65536)}}), "output.summary"},
		{"text over 65535", base(map[string]any{"output": map[string]any{"title": "t", "summary": "s", "text": strings.Repeat("x", 65536)}}), "output.text"},
		{"51 annotations", base(map[string]any{"output": map[string]any{"title": "t", "summary": "s", "annotations": ann(51)}}), "output.annotations"},
		{"4 actions", base(map[string]any{"actions": []any{action("a", "b", "c"), action("a", "b", "d"), action("a", "b", "e"), action("a", "b", "f")}}), "actions"},
		{"label over 20", base(map[string]any{"actions": []any{action(strings.Repeat("l", 21), "d", "i")}}), "actions[0].label"},
		{"description over 40", base(map[string]any{"actions": []any{action("l", strings.Repeat("d", 41), "i")}}), "actions[0].description"},
		{"identifier over 20", base(map[string]any{"actions": []any{action("l", "d", strings.Repeat("i", 21))}}), "actions[0].identifier"},
		{"completed without conclusion", base(map[string]any{"status": "completed"}), "conclusion"},
		{"unknown status", base(map[string]any{"status": "done"}), "status"},
		{"unknown conclusion", base(map[string]any{"conclusion": "great"}), "conclusion"},
		{"missing head_sha", map[string]any{"name": "x"}, "head_sha"},
		{"title missing on create", base(map[string]any{"output": map[string]any{"summary": "s"}}), "output.title"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth, tt.body)
			var body struct {
				Message string
				Errors  []struct{ Field, Code string }
			}
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 422 || body.Message != "Validation Failed" {
				t.Fatalf("%d %s, want 422 Validation Failed", resp.StatusCode, b)
			}
			found := false
			for _, e := range body.Errors {
				found = found || e.Field == tt.field
			}
			if !found {
				t.Errorf("errors %s do not name %s", b, tt.field)
			}
		})
	}
	t.Run("annotations append across updates", func(t *testing.T) {
		resp, b := f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth,
			base(map[string]any{"output": map[string]any{"title": "t", "summary": "s", "annotations": ann(50)}}))
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		id := int64(jsonMap(t, b)["id"].(float64))
		resp, b = f.do(t, http.MethodPatch, "repos/acme/web/check-runs/"+strconv.FormatInt(id, 10), auth,
			map[string]any{"conclusion": "failure", "output": map[string]any{"summary": "s", "annotations": ann(50)}})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		out := jsonMap(t, b)["output"].(map[string]any)
		if out["annotations_count"].(float64) != 100 || jsonMap(t, b)["status"] != "completed" {
			t.Errorf("after update: %s", b)
		}
		runs := f.sim.CheckRuns(repoWeb, f.sha2)
		if len(runs) != 1 || len(runs[0].Annotations) != 100 || runs[0].Conclusion != "failure" {
			t.Errorf("state: %+v", runs)
		}
	})
}

func TestStatus_DescriptionOver140IsGitHubs422Body(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	resp, b := f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth,
		map[string]any{"state": "success", "context": "stagely/deploy", "description": strings.Repeat("d", 141)})
	var body struct {
		Message string
		Errors  []map[string]string
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"resource": "Status", "code": "custom", "field": "description", "message": "description is too long (maximum is 140 characters)"}
	if resp.StatusCode != 422 || body.Message != "Validation Failed" || len(body.Errors) != 1 || !reflect.DeepEqual(body.Errors[0], want) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth,
		map[string]any{"state": "success", "context": "stagely/deploy", "description": strings.Repeat("d", 140)})
	if resp.StatusCode != 201 || resp.Header.Get("Location") == "" {
		t.Fatalf("140 characters: %d %s", resp.StatusCode, b)
	}
	if st := f.sim.Statuses(repoWeb, f.sha2); len(st) != 1 || st[0].State != "success" {
		t.Errorf("statuses: %+v", st)
	}
}

func TestDeployment_RequiredContextsAsGitHubChecksThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := "Bearer " + f.installationToken(t, nil)
	if resp, b := f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth, map[string]any{"state": "pending", "context": "ci"}); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, b := f.do(t, http.MethodPost, "repos/acme/web/deployments", auth, map[string]any{"ref": "main"})
	if resp.StatusCode != 409 || !strings.Contains(string(b), `"context":"ci","state":"pending"`) {
		t.Errorf("omitted required_contexts with a pending status: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodPost, "repos/acme/web/deployments", auth, map[string]any{})
	if resp.StatusCode != 422 {
		t.Errorf("no ref: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodPost, "repos/acme/web/deployments", auth, map[string]any{"ref": "main", "required_contexts": []string{}, "environment": "web"})
	if resp.StatusCode != 201 {
		t.Fatalf("required_contexts []: %d %s", resp.StatusCode, b)
	}
	id := int64(jsonMap(t, b)["id"].(float64))
	path := "repos/acme/web/deployments/" + strconv.FormatInt(id, 10) + "/statuses"
	if resp, b := f.do(t, http.MethodPost, path, auth, map[string]any{"state": "success", "description": strings.Repeat("d", 141)}); resp.StatusCode != 422 {
		t.Errorf("deployment status description 141: %d %s", resp.StatusCode, b)
	}
	if resp, b := f.do(t, http.MethodPost, path, auth, map[string]any{"state": "in_progress", "log_url": "https://s.example/1"}); resp.StatusCode != 201 || jsonMap(t, b)["target_url"] != "https://s.example/1" {
		t.Errorf("log_url sets target_url: %d %s", resp.StatusCode, b)
	}
	deps := f.sim.Deployments(repoWeb)
	if len(deps) != 1 || deps[0].SHA != f.sha2 || deps[0].Environment != "web" || len(deps[0].Statuses) != 1 {
		t.Errorf("state: %+v", deps)
	}
}

// receive makes a receiver answering status the Sim's webhook URL until the test ends.
func (f *fixture) receive(t *testing.T, status int) *receiver {
	t.Helper()
	rc := &receiver{status: status}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	f.sim.SetWebhookURL(srv.URL)
	return rc
}

// receiver is a webhook endpoint that keeps what it got.
type receiver struct {
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, r)
	rc.bodies = append(rc.bodies, b)
	status := rc.status
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func TestWebhook_SignedDeliveriesVerifyWithTheSecretAndRedeliverSameBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rc := f.receive(t, http.StatusAccepted)
	ctx := context.Background()
	sha, err := f.sim.Commit(ctx, repoWeb, "main", map[string][]byte{"compose.yaml": []byte("services: {}\n")}, "Empty")
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.sim.Redeliver(ctx, f.sim.Deliveries()[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.StatusCode != http.StatusAccepted {
		t.Errorf("delivery returned %d, want the receiver's 202", d.StatusCode)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 2 {
		t.Fatalf("receiver got %d requests", len(rc.got))
	}
	r, body := rc.got[0], rc.bodies[0]
	mac := hmac.New(sha256.New, []byte(f.sim.WebhookSecret()))
	mac.Write(body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want)) {
		t.Errorf("X-Hub-Signature-256 %s does not verify", r.Header.Get("X-Hub-Signature-256"))
	}
	mac1 := hmac.New(sha1.New, []byte(f.sim.WebhookSecret()))
	mac1.Write(body)
	if want := "sha1=" + hex.EncodeToString(mac1.Sum(nil)); r.Header.Get("X-Hub-Signature") != want {
		t.Errorf("X-Hub-Signature %s does not verify", r.Header.Get("X-Hub-Signature"))
	}
	if err := github.ValidateSignature(r.Header.Get("X-Hub-Signature-256"), body, []byte(f.sim.WebhookSecret())); err != nil {
		t.Errorf("go-github rejects the signature: %v", err)
	}
	for _, h := range []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID", "X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Hook-Installation-Target-Type"} {
		if r.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "GitHub-Hookshot/") || r.Header.Get("X-GitHub-Event") != "push" {
		t.Errorf("headers %v", r.Header)
	}
	if rc.got[1].Header.Get("X-GitHub-Delivery") != r.Header.Get("X-GitHub-Delivery") || string(rc.bodies[1]) != string(body) {
		t.Error("redelivery changed the id or the bytes")
	}
	ev, err := github.ParseWebHook("push", body)
	if err != nil {
		t.Fatal(err)
	}
	push := ev.(*github.PushEvent)
	if push.GetAfter() != sha || push.GetBefore() != f.sha2 || push.GetRef() != "refs/heads/main" || push.GetHeadCommit().GetID() != sha ||
		push.GetInstallation().GetID() != f.inst || len(push.Commits) != 1 || push.GetCreated() || push.GetDeleted() {
		t.Errorf("push payload: %s", body)
	}
	if !reflect.DeepEqual(push.Commits[0].Removed, []string{"app/static/b/c.txt", "stagely.yaml"}) {
		t.Errorf("removed files: %v", push.Commits[0].Removed)
	}
}

func TestWebhookPayloads_CarryTheKeysOfGitHubsExamples(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.receive(t, http.StatusOK)
	ctx := context.Background()
	auth := "Bearer " + f.installationToken(t, nil)
	resp, b := f.do(t, http.MethodPost, "repos/acme/web/check-runs", auth, map[string]any{
		"name": "Stagely / deploy", "head_sha": f.sha2, "conclusion": "success",
		"actions": []any{map[string]string{"label": "Redeploy", "description": "Deploy again", "identifier": "redeploy"}},
	})
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	runID := int64(jsonMap(t, b)["id"].(float64))
	if _, err := f.sim.SendCheckRunRequestedAction(ctx, repoWeb, runID, "rollback"); err == nil {
		t.Error("requested_action for an action the run does not have was sent")
	}
	featureSHA, err := f.sim.Commit(ctx, repoWeb, "feature", map[string][]byte{"compose.yaml": []byte("services: {}\n")}, "feature")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		example string // under shared/conformance/webhooks
		event   string
		send    func() (*githubsim.Delivery, error)
		nested  []string
	}{
		{"push/with-new-branch.payload.json", "push", func() (*githubsim.Delivery, error) { d := f.sim.Deliveries()[0]; return &d, nil }, []string{"repository", "head_commit"}},
		{"push/probot.push.json", "push", func() (*githubsim.Delivery, error) {
			_, err := f.sim.Commit(ctx, repoWeb, "feature", map[string][]byte{"compose.yaml": []byte("services: {a: {}}\n")}, "more")
			ds := f.sim.Deliveries()
			return &ds[len(ds)-1], err
		}, nil},
		{"push/payload.json", "push", func() (*githubsim.Delivery, error) { return f.sim.DeleteBranch(ctx, repoWeb, "feature") }, nil},
		{"push/with-installation.payload.json", "push", func() (*githubsim.Delivery, error) { return f.sim.PushTag(ctx, repoWeb, "v1.0.0", "main") }, nil},
		{"pull_request/opened.payload.json", "pull_request", func() (*githubsim.Delivery, error) {
			if _, err := f.sim.Commit(ctx, repoWeb, "feature", map[string][]byte{"a": []byte("b")}, "again"); err != nil {
				return nil, err
			}
			return f.sim.SendPullRequest(ctx, repoWeb, "opened", githubsim.PullRequest{Number: 7, Head: "feature"})
		}, []string{"pull_request", "repository"}},
		{"pull_request/synchronize.payload.json", "pull_request", func() (*githubsim.Delivery, error) {
			return f.sim.SendPullRequest(ctx, repoWeb, "synchronize", githubsim.PullRequest{Number: 7, Head: "feature", Before: featureSHA})
		}, []string{"pull_request"}},
		{"check_run/rerequested.payload.json", "check_run", func() (*githubsim.Delivery, error) { return f.sim.SendCheckRunRerequested(ctx, repoWeb, runID) }, []string{"check_run"}},
		{"check_run/requested_action.payload.json", "check_run", func() (*githubsim.Delivery, error) {
			return f.sim.SendCheckRunRequestedAction(ctx, repoWeb, runID, "redeploy")
		}, []string{"check_run", "requested_action"}},
		{"check_suite/rerequested.payload.json", "check_suite", func() (*githubsim.Delivery, error) { return f.sim.SendCheckSuiteRerequested(ctx, repoWeb, f.sha2) }, []string{"check_suite"}},
		{"installation/created.payload.json", "installation", func() (*githubsim.Delivery, error) { return f.sim.SendInstallation(ctx, f.inst, "created") }, []string{"installation"}},
		{"installation_repositories/added.payload.json", "installation_repositories", func() (*githubsim.Delivery, error) {
			return f.sim.SendInstallationRepositories(ctx, f.inst, "added", "acme/api")
		}, []string{"installation"}},
		{"installation_repositories/removed.payload.json", "installation_repositories", func() (*githubsim.Delivery, error) {
			return f.sim.SendInstallationRepositories(ctx, f.inst, "removed", "acme/api")
		}, nil},
		{"installation/suspend.payload.json", "installation", func() (*githubsim.Delivery, error) { return f.sim.SendInstallation(ctx, f.inst, "suspend") }, []string{"installation"}},
		{"installation/deleted.payload.json", "installation", func() (*githubsim.Delivery, error) { return f.sim.SendInstallation(ctx, f.inst, "deleted") }, nil},
		{"ping/with-app_id.payload.json", "ping", func() (*githubsim.Delivery, error) { return f.sim.SendPing(ctx) }, nil},
	}
	for _, st := range steps {
		d, err := st.send()
		if err != nil {
			t.Fatalf("%s: %v", st.example, err)
		}
		if d.Event != st.event || d.StatusCode != http.StatusOK {
			t.Errorf("%s: event %s status %d", st.example, d.Event, d.StatusCode)
		}
		exampleBytes, err := os.ReadFile(filepath.Join(webhooktest.Dir(t), "webhooks", st.example))
		if err != nil {
			t.Fatalf("read GitHub's example: %v", err)
		}
		example, ours := jsonMap(t, exampleBytes), jsonMap(t, d.Body)
		// organization and enterprise appear only for organization-owned or enterprise installs;
		// a ping to an App hook has no repository or sender.
		skip := map[string]bool{"organization": true, "enterprise": true, "repository": st.event == "ping", "sender": st.event == "ping"}
		missingKeys(t, st.example, "", example, ours, skip)
		for _, k := range st.nested {
			ex, _ := example[k].(map[string]any)
			o, _ := ours[k].(map[string]any)
			missingKeys(t, st.example, k+".", ex, o, map[string]bool{"organization": true})
		}
		if _, err := github.ParseWebHook(st.event, d.Body); err != nil {
			t.Errorf("%s: go-github cannot parse ours: %v", st.example, err)
		}
	}
	// A suspended, then deleted installation mints no tokens.
	resp, _ = f.do(t, http.MethodPost, "app/installations/"+strconv.FormatInt(f.inst, 10)+"/access_tokens", "Bearer "+f.jwt(t), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("token for a deleted installation: %d", resp.StatusCode)
	}
}

func missingKeys(t *testing.T, name, prefix string, example, ours map[string]any, skip map[string]bool) {
	t.Helper()
	for k := range example {
		if _, ok := ours[k]; !ok && !skip[k] {
			t.Errorf("%s: our payload lacks %s%s", name, prefix, k)
		}
	}
}

func TestOAuth_ExchangeAnswersLikeGitHub(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sim.AddUser("alice")
	redirect := "https://stagely.example/auth/github/callback"
	q := url.Values{"client_id": {f.sim.ClientID()}, "redirect_uri": {redirect}, "state": {"s1"}}
	resp, _ := doHTTP(t, noRedirect(), http.MethodGet, f.ep.Web+"/login/oauth/authorize?"+q.Encode(), "", nil)
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "s1" {
		t.Errorf("no user signed in: %s", resp.Header.Get("Location"))
	}
	f.sim.SetAuthorizeAs("alice")
	resp, _ = doHTTP(t, noRedirect(), http.MethodGet, f.ep.Web+"/login/oauth/authorize?"+q.Encode(), "", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	form := url.Values{"client_id": {f.sim.ClientID()}, "client_secret": {f.sim.ClientSecret()}, "code": {code}}
	resp, b := postForm(t, f.ep.Web+"/login/oauth/access_token", form)
	vals, err := url.ParseQuery(string(b))
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(vals.Get("access_token"), "ghu_") || vals.Get("token_type") != "bearer" ||
		vals.Get("expires_in") != "28800" || !strings.HasPrefix(vals.Get("refresh_token"), "ghr_") {
		t.Fatalf("form exchange: %d %s", resp.StatusCode, b)
	}
	resp, b = doHTTPAccept(t, http.MethodPost, f.ep.Web+"/login/oauth/access_token", "application/json",
		map[string]string{"client_id": f.sim.ClientID(), "client_secret": f.sim.ClientSecret(), "code": code})
	want := map[string]any{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired.",
		"error_uri": "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}
	if resp.StatusCode != 200 || !reflect.DeepEqual(jsonMap(t, b), want) {
		t.Errorf("reused code: %d %s", resp.StatusCode, b)
	}
	resp, b = doHTTPAccept(t, http.MethodPost, f.ep.Web+"/login/oauth/access_token", "application/json",
		map[string]string{"client_id": f.sim.ClientID(), "client_secret": "wrong", "code": code})
	if resp.StatusCode != 200 || jsonMap(t, b)["error"] != "incorrect_client_credentials" {
		t.Errorf("wrong secret: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodGet, "user", "Bearer "+vals.Get("access_token"), nil)
	if resp.StatusCode != 200 || jsonMap(t, b)["login"] != "alice" {
		t.Errorf("GET /user: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, http.MethodGet, "user/installations", "Bearer "+vals.Get("access_token"), nil)
	if resp.StatusCode != 200 || jsonMap(t, b)["total_count"].(float64) != 0 {
		t.Errorf("alice sees installations she is not a member of: %s", b)
	}
	if resp, _ := f.do(t, http.MethodGet, "user", "Bearer ghu_unknown", nil); resp.StatusCode != 401 {
		t.Errorf("unknown user token: %d", resp.StatusCode)
	}
}

func TestManifest_CodeIsSingleUseAndExpiresAfterAnHour(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	manifest := `{"name":"Stagely Prod","url":"https://stagely.example","hook_attributes":{"url":"https://stagely.example/webhooks/github"},"redirect_url":"https://stagely.example/setup/callback","default_permissions":{"checks":"write","contents":"read"}}`
	code := manifestCode(t, f, manifest, "abc123")
	resp, b := f.do(t, http.MethodPost, "app-manifests/"+code+"/conversions", "", nil)
	if resp.StatusCode != 201 {
		t.Fatalf("conversion: %d %s", resp.StatusCode, b)
	}
	m := jsonMap(t, b)
	if m["slug"] != "stagely-prod" || m["webhook_secret"] != f.sim.WebhookSecret() || m["client_id"] != f.sim.ClientID() {
		t.Errorf("conversion body: %s", b)
	}
	// The pem handed out signs JWTs the Sim accepts.
	now := f.clock.Now()
	tok := appJWT(t, parseKey(t, []byte(m["pem"].(string))), m["id"], now.Add(-time.Minute), now.Add(5*time.Minute))
	if resp, b := f.do(t, http.MethodGet, "app", "Bearer "+tok, nil); resp.StatusCode != 200 {
		t.Errorf("JWT from the converted pem: %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(t, http.MethodPost, "app-manifests/"+code+"/conversions", "", nil); resp.StatusCode != 404 {
		t.Errorf("second conversion: %d, want 404", resp.StatusCode)
	}
	late := manifestCode(t, f, manifest, "s")
	f.clock.Advance(time.Hour + time.Second)
	if resp, _ := f.do(t, http.MethodPost, "app-manifests/"+late+"/conversions", "", nil); resp.StatusCode != 404 {
		t.Errorf("conversion after an hour: %d, want 404", resp.StatusCode)
	}
	resp, b = postForm(t, f.ep.Web+"/settings/apps/new", url.Values{"manifest": {`{"url":"https://x.example","redirect_url":"https://x.example/r"}`}})
	if resp.StatusCode != 422 {
		t.Errorf("manifest without hook_attributes.url: %d %s", resp.StatusCode, b)
	}
}

func TestCalls_RecordMethodPathStatusBodyAndCredential(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sim.ResetCalls()
	auth := "Bearer " + f.installationToken(t, nil)
	f.do(t, http.MethodPost, "repos/acme/web/statuses/"+f.sha2, auth, map[string]any{"state": "pending", "context": "c"})
	f.do(t, http.MethodGet, "repos/acme/web/contents/nope?ref=main", auth, nil)
	calls := f.sim.Calls()
	if len(calls) != 3 || calls[0].Credential != githubsim.CredentialJWT || calls[0].Status != 201 {
		t.Fatalf("calls: %+v", calls)
	}
	st := f.sim.CallsMatching(http.MethodPost, "/repos/*/*/statuses/*")
	if len(st) != 1 || !strings.Contains(string(st[0].Body), `"state":"pending"`) || st[0].Credential != githubsim.CredentialInstallation {
		t.Errorf("status call: %+v", st)
	}
	if c := calls[2]; c.Status != 404 || c.Query != "ref=main" {
		t.Errorf("contents call: %+v", c)
	}
}

func TestCompare_ListsFilesChangedSinceTheMergeBaseUpTo300(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	auth := "Bearer " + f.installationToken(t, nil)
	type entry struct{ Filename, Status string }
	compare := func(base, head string) (status string, files []entry) {
		t.Helper()
		resp, b := f.do(t, http.MethodGet, "repos/acme/web/compare/"+base+"..."+head, auth, nil)
		var body struct {
			Status string
			Files  []entry
		}
		if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("compare %s...%s: %d %s", base[:7], head[:7], resp.StatusCode, b)
		}
		return body.Status, body.Files
	}
	if status, files := compare(f.sha1, f.sha2); status != "ahead" || !reflect.DeepEqual(files, []entry{
		{"app/static/a.txt", "removed"}, {"compose.yaml", "modified"},
	}) {
		t.Fatalf("sha1...sha2: %s %v", status, files)
	}
	if _, files := compare(f.sha2, f.sha1); len(files) != 0 {
		t.Fatalf("head behind base lists files changed since the merge base, which is head: %v", files)
	}
	tree := map[string][]byte{}
	for i := range githubsim.MaxCompareFiles + 1 {
		tree[fmt.Sprintf("gen/f%03d.txt", i)] = []byte{byte(i)}
	}
	big, err := f.sim.Commit(ctx, repoWeb, "main", tree, "Generate")
	if err != nil {
		t.Fatal(err)
	}
	// 301 added, 3 removed: the list stops at GitHub's 300.
	if _, files := compare(f.sha2, big); len(files) != githubsim.MaxCompareFiles || files[0].Filename != "gen/f000.txt" {
		t.Fatalf("a comparison of 304 changed files lists %d, first %v", len(files), files[0])
	}
}

// TestPushPayload_ListsMoreThan20Commits: GitHub's published description caps a push's commit
// list at 2048, not at the 20 of its older documentation.
func TestPushPayload_ListsMoreThan20Commits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var last string
	for i := range 25 {
		sha, err := f.sim.Commit(ctx, repoWeb, "main", map[string][]byte{"n.txt": []byte(fmt.Sprint(i))}, "step")
		if err != nil {
			t.Fatal(err)
		}
		last = sha
	}
	if _, err := f.sim.ForcePush(ctx, repoWeb, "main", f.sha2); err != nil {
		t.Fatal(err)
	}
	f.receive(t, http.StatusOK)
	d, err := f.sim.ForcePush(ctx, repoWeb, "main", last)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Forced  bool
		Commits []struct{ ID string }
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Forced || len(body.Commits) != 25 || body.Commits[24].ID != last {
		t.Fatalf("push of 25 commits: forced=%v, %d commits listed", body.Forced, len(body.Commits))
	}
}
