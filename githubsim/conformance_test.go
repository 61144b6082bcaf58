package githubsim_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"

	"github.com/stagely/stagely/githubsim"
)

// TestConformance_EveryServedOperationMatchesGitHubsDescription drives every operation githubsim
// serves with real clients (ghinstallation for the App and installation tokens, go-github v60 for
// the calls) and checks each request and response against GitHub's published REST description.
func TestConformance_EveryServedOperationMatchesGitHubsDescription(t *testing.T) {
	sp := mustSpec(t)
	f := newFixture(t)
	ctx := context.Background()
	vt := &validatingTransport{spec: sp, apiHost: hostOf(t, f.ep.API), base: http.DefaultTransport}
	base := strings.TrimSuffix(f.ep.API, "/")

	// The App, through ghinstallation's JWT transport.
	atr, err := ghinstallation.NewAppsTransport(vt, f.sim.AppID(), f.sim.PrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	atr.BaseURL = base
	app := ghClient(t, f.ep.API, atr, "")
	must := func(_ any, resp *github.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	must(app.Apps.Get(ctx, ""))
	must(app.Apps.ListInstallations(ctx, nil))
	must(app.Apps.GetInstallation(ctx, f.inst))
	must(app.Apps.FindRepositoryInstallation(ctx, "acme", "web"))
	must(app.Apps.CreateInstallationToken(ctx, f.inst, &github.InstallationTokenOptions{
		Repositories: []string{"web"},
		Permissions:  &github.InstallationPermissions{Contents: ptr("read"), Checks: ptr("write")},
	}))

	// The App webhook's delivery log: one attempt refused by the receiver, one that got no
	// answer, and a redelivery; two to a page, so the cursor in the Link header is followed.
	f.receive(t, http.StatusServiceUnavailable)
	if _, err := f.sim.SendPing(ctx); err != nil {
		t.Fatal(err)
	}
	f.sim.SetWebhookURL("http://" + closedAddr(t))
	if _, err := f.sim.SendPing(ctx); err == nil {
		t.Fatal("a delivery to a closed port succeeded")
	}
	page1, cur, err := app.Apps.ListHookDeliveries(ctx, &github.ListCursorOptions{PerPage: 1})
	if err != nil || len(page1) != 1 || cur.Cursor == "" {
		t.Fatalf("first page of deliveries: %v, %d items, cursor %q", err, len(page1), cur.Cursor)
	}
	page2, _, err := app.Apps.ListHookDeliveries(ctx, &github.ListCursorOptions{PerPage: 1, Cursor: cur.Cursor})
	if err != nil || len(page2) != 1 || page2[0].GetID() >= page1[0].GetID() {
		t.Fatalf("second page of deliveries: %v %v", err, page2)
	}
	must(app.Apps.GetHookDelivery(ctx, page1[0].GetID()))
	must(app.Apps.GetHookDelivery(ctx, page2[0].GetID()))
	// go-github reports GitHub's 202 as an *AcceptedError.
	if _, _, err := app.Apps.RedeliverHookDelivery(ctx, page2[0].GetID()); !isAccepted(err) {
		t.Fatalf("redeliver: want 202 Accepted, got %v", err)
	}

	// An installation, through ghinstallation's token transport (it mints tokens from the Sim).
	itr := ghinstallation.NewFromAppsTransport(atr, f.inst)
	itr.BaseURL = base
	gh := ghClient(t, f.ep.API, itr, "")
	must(gh.Repositories.Get(ctx, "acme", "web"))
	must(gh.Repositories.GetCommit(ctx, "acme", "web", "main", nil))
	must(gh.Repositories.GetCommit(ctx, "acme", "web", f.sha1, nil))
	file, _, _, err := gh.Repositories.GetContents(ctx, "acme", "web", "compose.yaml", &github.RepositoryContentGetOptions{Ref: f.sha1})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := file.GetContent(); got != "services:\n  web:\n    image: nginx\n" {
		t.Errorf("compose.yaml at first commit = %q", got)
	}
	_, dir, _, err := gh.Repositories.GetContents(ctx, "acme", "web", "app/static", &github.RepositoryContentGetOptions{Ref: f.sha1})
	if err != nil || len(dir) != 2 {
		t.Fatalf("directory listing: %v, %d entries", err, len(dir))
	}
	if _, _, resp, err := gh.Repositories.GetContents(ctx, "acme", "web", "missing.txt", nil); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing file: want 404, got %v", err)
	}
	link, _, err := gh.Repositories.GetArchiveLink(ctx, "acme", "web", github.Tarball, &github.RepositoryContentGetOptions{Ref: "main"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if link.Host == hostOf(t, f.ep.API) {
		t.Errorf("tarball link %s is on the API host", link)
	}

	run, _, err := gh.Checks.CreateCheckRun(ctx, "acme", "web", github.CreateCheckRunOptions{
		Name: "Stagely / deploy", HeadSHA: f.sha2, Status: ptr("in_progress"), ExternalID: ptr("deploy-1"),
		DetailsURL: ptr("https://stagely.example/deployments/1"),
		Output: &github.CheckRunOutput{Title: ptr("Deploying"), Summary: ptr("Started"), Annotations: []*github.CheckRunAnnotation{{
			Path: ptr("compose.yaml"), StartLine: ptr(2), EndLine: ptr(2), AnnotationLevel: ptr("warning"), Message: ptr("pin the image"),
		}}},
		Actions: []*github.CheckRunAction{{Label: "Redeploy", Description: "Deploy this commit again", Identifier: "redeploy"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	must(gh.Checks.UpdateCheckRun(ctx, "acme", "web", run.GetID(), github.UpdateCheckRunOptions{
		Name: "Stagely / deploy", Conclusion: ptr("success"),
		Output: &github.CheckRunOutput{Title: ptr("Deployed"), Summary: ptr("| service | state |\n|---|---|\n| web | running |"), Text: ptr("log tail")},
	}))
	must(gh.Checks.GetCheckRun(ctx, "acme", "web", run.GetID()))
	must(gh.Checks.ListCheckRunsForRef(ctx, "acme", "web", "main", nil))

	must(gh.Repositories.CreateStatus(ctx, "acme", "web", f.sha2, &github.RepoStatus{
		State: ptr("pending"), Context: ptr("stagely/deploy"), Description: ptr("Deploying"), TargetURL: ptr("https://stagely.example/d/1"),
	}))
	must(gh.Repositories.ListStatuses(ctx, "acme", "web", "main", nil))

	// Omitting required_contexts while a status is pending is GitHub's 409, a declared response.
	_, resp, err := gh.Repositories.CreateDeployment(ctx, "acme", "web", &github.DeploymentRequest{Ref: ptr("main"), Environment: ptr("web")})
	if err == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("deployment with pending status: want 409, got %v", err)
	}
	dep, _, err := gh.Repositories.CreateDeployment(ctx, "acme", "web", &github.DeploymentRequest{
		Ref: ptr("main"), Environment: ptr("web"), RequiredContexts: &[]string{}, AutoMerge: ptr(false),
		Payload: map[string]any{"job": 1}, Description: ptr("Stagely deploy"),
	})
	if err != nil {
		t.Fatal(err)
	}
	must(gh.Repositories.CreateDeploymentStatus(ctx, "acme", "web", dep.GetID(), &github.DeploymentStatusRequest{
		State: ptr("success"), LogURL: ptr("https://stagely.example/d/1"), Description: ptr("Deployed"), EnvironmentURL: ptr("https://web.example"),
	}))
	must(gh.Repositories.ListDeploymentStatuses(ctx, "acme", "web", dep.GetID(), nil))
	must(gh.Repositories.ListDeployments(ctx, "acme", "web", &github.DeploymentsListOptions{SHA: f.sha2, Environment: "web"}))

	// What Stagely asks before it acts: the branch head, how two commits relate, a user's role.
	must(gh.Git.GetRef(ctx, "acme", "web", "heads/main"))
	for _, basehead := range [][2]string{{f.sha1, f.sha2}, {f.sha2, f.sha1}, {f.sha2, f.sha2}} {
		must(gh.Repositories.CompareCommits(ctx, "acme", "web", basehead[0], basehead[1], nil))
	}
	f.sim.AddUser("alice")
	if err := f.sim.AddInstallationMember(f.inst, "alice"); err != nil {
		t.Fatal(err)
	}
	must(gh.Repositories.GetPermissionLevel(ctx, "acme", "web", "alice"))
	if err := f.sim.SetRepoRole("acme/web", "alice", "none"); err != nil {
		t.Fatal(err)
	}
	must(gh.Repositories.GetPermissionLevel(ctx, "acme", "web", "alice"))
	if err := f.sim.SetRepoRole("acme/web", "alice", "write"); err != nil {
		t.Fatal(err)
	}

	// A pull request's preview: its comment kept up to date, a transient deployment, a button.
	f.receive(t, http.StatusOK)
	fork, err := f.sim.Fork("acme/web", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	forkSHA, err := f.sim.Commit(ctx, fork, "patch", map[string][]byte{"compose.yaml": []byte("services: {}\n")}, "patch")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.SendPullRequest(ctx, "acme/web", "opened", githubsim.PullRequest{Number: 9, Head: "patch", HeadRepo: fork}); err != nil {
		t.Fatal(err)
	}
	must(gh.PullRequests.Get(ctx, "acme", "web", 9))
	if _, err := f.sim.SendPullRequest(ctx, "acme/web", "closed", githubsim.PullRequest{Number: 9, Head: "patch", HeadRepo: fork, Merged: true, Sender: "acme"}); err != nil {
		t.Fatal(err)
	}
	must(gh.PullRequests.Get(ctx, "acme", "web", 9)) // merged: merged_at, merged_by, merge_commit_sha
	comment, _, err := gh.Issues.CreateComment(ctx, "acme", "web", 9, &github.IssueComment{Body: ptr("Preview: https://web--pr-9.example")})
	if err != nil {
		t.Fatal(err)
	}
	must(gh.Issues.EditComment(ctx, "acme", "web", comment.GetID(), &github.IssueComment{Body: ptr("Preview (updated)")}))
	must(gh.Issues.GetComment(ctx, "acme", "web", comment.GetID()))
	must(gh.Issues.ListComments(ctx, "acme", "web", 9, nil))
	if _, err := gh.Issues.DeleteComment(ctx, "acme", "web", comment.GetID()); err != nil {
		t.Fatal(err)
	}
	if _, resp, err := gh.Issues.EditComment(ctx, "acme", "web", comment.GetID(), &github.IssueComment{Body: ptr("again")}); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("edit a deleted comment: want 404, got %v", err)
	}
	preview, _, err := gh.Repositories.CreateDeployment(ctx, "acme", "web", &github.DeploymentRequest{
		Ref: ptr(forkSHA), Environment: ptr("preview/pr-9"), RequiredContexts: &[]string{}, AutoMerge: ptr(false),
		TransientEnvironment: ptr(true), ProductionEnvironment: ptr(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"success", "inactive"} {
		must(gh.Repositories.CreateDeploymentStatus(ctx, "acme", "web", preview.GetID(), &github.DeploymentStatusRequest{
			State: ptr(state), EnvironmentURL: ptr("https://web--pr-9.example"),
		}))
	}
	must(gh.Checks.CreateCheckRun(ctx, "acme", "web", github.CreateCheckRunOptions{
		Name: "Stagely / preview", HeadSHA: forkSHA, ExternalID: ptr("preview-9"), Conclusion: ptr("action_required"),
		Output:  &github.CheckRunOutput{Title: ptr("Waiting for approval"), Summary: ptr("A fork's pull request")},
		Actions: []*github.CheckRunAction{{Label: "Deploy preview", Description: "Deploy this pull request's head", Identifier: "deploy_preview"}},
	}))

	// GitHub failing: a 502 and both shapes of a secondary rate limit.
	for _, kind := range []githubsim.FaultKind{githubsim.FaultBadGateway, githubsim.FaultSecondaryLimit, githubsim.FaultTooManyRequests} {
		if _, err := f.sim.AddFault(githubsim.Fault{Method: "POST", Path: "/repos/*/*/statuses/*", Kind: kind, Times: 1}); err != nil {
			t.Fatal(err)
		}
		_, _, err := gh.Repositories.CreateStatus(ctx, "acme", "web", f.sha2, &github.RepoStatus{State: ptr("pending"), Context: ptr("faulty")})
		if err == nil {
			t.Fatalf("fault %d did not fail the call", kind)
		}
	}

	// A user, through the OAuth web flow.
	f.sim.SetAuthorizeAs("alice")
	user := ghClient(t, f.ep.API, vt, oauthToken(t, f, "https://stagely.example/auth/github/callback"))
	must(user.Users.Get(ctx, ""))
	must(user.Apps.ListUserInstallations(ctx, nil))
	must(user.Apps.ListUserRepos(ctx, f.inst, nil))

	// The manifest flow's conversion.
	code := manifestCode(t, f, `{"name":"Stagely Test","url":"https://stagely.example","hook_attributes":{"url":"https://stagely.example/webhooks/github"},"redirect_url":"https://stagely.example/setup/callback"}`, "st8")
	must(ghClient(t, f.ep.API, vt, "").Apps.CompleteAppManifest(ctx, code))

	served := map[string]bool{}
	for _, v := range vt.checked() {
		if v.Err != nil {
			t.Errorf("%s → %d does not match GitHub's description:\n%v", v.Operation, v.Status, v.Err)
		}
		if v.Status < 400 {
			if route, _, ok := sp.find(strings.Fields(v.Operation)[0], strings.Fields(v.Operation)[1]); ok {
				served[route.Method+" "+route.Path] = true
			}
		}
	}
	for _, p := range servedPaths {
		item := sp.doc.Paths.Value(p)
		for method := range item.Operations() {
			if sim404(method, p) {
				continue
			}
			if !served[method+" "+p] {
				t.Errorf("%s %s was never exercised with a successful call", method, p)
			}
		}
	}
}

// isAccepted says whether go-github saw a 202 Accepted.
func isAccepted(err error) bool {
	var acc *github.AcceptedError
	return errors.As(err, &acc)
}

// closedAddr is a loopback address nothing listens on: connections to it are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// sim404 lists the operations of served paths that githubsim does not implement (GitHub's other
// methods on the same path).
func sim404(method, path string) bool {
	switch method + " " + path {
	case "PATCH /repos/{owner}/{repo}", "DELETE /repos/{owner}/{repo}",
		"PUT /repos/{owner}/{repo}/contents/{path}", "DELETE /repos/{owner}/{repo}/contents/{path}",
		"PATCH /user", "DELETE /app/installations/{installation_id}", "PATCH /repos/{owner}/{repo}/pulls/{pull_number}":
		return true
	}
	return false
}

// TestConformance_ValidatorRejectsAWrongBody shows the validator is not vacuous: a check run
// without its required "id" and with a bad status is refused.
func TestConformance_ValidatorRejectsAWrongBody(t *testing.T) {
	sp := mustSpec(t)
	req, err := http.NewRequest(http.MethodGet, "http://sim/repos/a/b/check-runs/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	err = sp.check(req, nil, http.StatusOK, h, []byte(`{"name":"x","status":"sleeping"}`))
	if err == nil {
		t.Fatal("a check run without id and with status sleeping passed validation")
	}
	err = sp.check(req, nil, http.StatusCreated, h, []byte(`{}`))
	if err == nil {
		t.Fatal("an undeclared success status (201 on GET check run) passed validation")
	}
}

// oauthToken runs the OAuth web flow against the Sim and returns the user access token.
func oauthToken(t *testing.T, f *fixture, redirect string) string {
	t.Helper()
	q := url.Values{"client_id": {f.sim.ClientID()}, "redirect_uri": {redirect}, "state": {"xyz"}}
	resp, _ := doHTTP(t, noRedirect(), http.MethodGet, f.ep.Web+"/login/oauth/authorize?"+q.Encode(), "", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Query().Get("state") != "xyz" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize redirected to %s", loc)
	}
	body := map[string]string{"client_id": f.sim.ClientID(), "client_secret": f.sim.ClientSecret(), "code": loc.Query().Get("code"), "redirect_uri": redirect}
	resp, b := doHTTPAccept(t, http.MethodPost, f.ep.Web+"/login/oauth/access_token", "application/json", body)
	m := jsonMap(t, b)
	tok, _ := m["access_token"].(string)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(tok, "ghu_") {
		t.Fatalf("token exchange: %d %s", resp.StatusCode, b)
	}
	return tok
}

func doHTTPAccept(t *testing.T, method, u, accept string, body any) (*http.Response, []byte) {
	t.Helper()
	req := newJSONRequest(t, method, u, body)
	req.Header.Set("Accept", accept)
	return send(t, http.DefaultClient, req)
}

// manifestCode posts a manifest form as GitHub's docs show and returns the code from the redirect.
func manifestCode(t *testing.T, f *fixture, manifest, state string) string {
	t.Helper()
	resp, b := postForm(t, f.ep.Web+"/settings/apps/new?state="+state, url.Values{"manifest": {manifest}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("manifest: %d %s", resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Query().Get("state") != state {
		t.Fatalf("manifest redirect %s lost the state", loc)
	}
	return loc.Query().Get("code")
}
