package githubsim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Payload builders follow GitHub's published examples (shared/conformance/webhooks); the tests
// compare their key sets with those examples.

func (st *state) installationRef(instID int64) obj {
	return obj{"id": instID, "node_id": nodeID("IntegrationInstallation", instID)}
}

// pushCommit is a commit as push payloads list it.
func (st *state) pushCommit(rp *repo, c *commit, distinct bool) obj {
	var parentFiles map[string][]byte
	if len(c.parents) > 0 {
		parentFiles = rp.commits[c.parents[0]].files
	}
	added, removed, modified := diffFiles(parentFiles, c.files)
	person := obj{"name": c.author.name, "email": c.author.email, "username": c.author.username}
	return obj{
		"id":        c.sha,
		"tree_id":   c.treeSHA,
		"distinct":  distinct,
		"message":   c.message,
		"timestamp": c.authored.UTC().Format(time.RFC3339),
		"url":       st.baseURL + "/" + rp.fullName() + "/commit/" + c.sha,
		"author":    person,
		"committer": person,
		"added":     nonNil(added),
		"removed":   nonNil(removed),
		"modified":  nonNil(modified),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// maxPushCommits is how many commits a push payload lists at most: "The array includes a
// maximum of 2048 commits" (the push webhook's commits in GitHub's published description;
// GitHub's older documentation, and its events timeline today, say 20).
const maxPushCommits = 2048

// pushPayload builds a push event; after == zeroSHA is a deletion. Called with s.mu held.
func (st *state) pushPayload(rp *repo, ref, before, after string, forced bool) obj {
	if before == "" {
		before = zeroSHA
	}
	created, deleted := before == zeroSHA, after == zeroSHA
	html := st.baseURL + "/" + rp.fullName()
	commits := []any{}
	var head any
	isBranch := strings.HasPrefix(ref, "refs/heads/")
	if !deleted {
		c := rp.commits[after]
		head = st.pushCommit(rp, c, true)
		if isBranch {
			// The commits new to the branch, oldest first: the newest maxPushCommits of them.
			var chain []any
			for sha := after; sha != "" && sha != before && len(chain) < maxPushCommits; {
				cc := rp.commits[sha]
				chain = append(chain, st.pushCommit(rp, cc, true))
				if created || len(cc.parents) == 0 {
					break
				}
				sha = cc.parents[0]
			}
			slices.Reverse(chain)
			commits = chain
		}
	}
	compare := fmt.Sprintf("%s/compare/%s...%s", html, before[:12], after[:12])
	if created && !deleted {
		compare = html + "/commit/" + after
		if !isBranch {
			compare = html + "/compare/" + strings.TrimPrefix(ref, "refs/tags/")
		}
	}
	var baseRef any
	if !isBranch && !deleted {
		for name, sha := range rp.branches {
			if sha == after {
				baseRef = "refs/heads/" + name
			}
		}
	}
	pusher := obj{"name": rp.owner, "email": strings.ToLower(rp.owner) + "@users.noreply.sim"}
	payload := obj{
		"ref":          ref,
		"before":       before,
		"after":        after,
		"repository":   st.repositoryForPush(rp),
		"pusher":       pusher,
		"sender":       st.simpleUser(rp.owner),
		"installation": st.installationRef(rp.installationID),
		"created":      created,
		"deleted":      deleted,
		"forced":       forced,
		"base_ref":     baseRef,
		"compare":      compare,
		"commits":      commits,
		"head_commit":  head,
	}
	if rp.forkOf != "" {
		delete(payload, "installation") // the App is not installed on a fork
	}
	return payload
}

// deliverPush delivers a push event, unless it is to a fork (no installation in the payload):
// GitHub sends the App no events of repositories it is not installed on.
func (s *Sim) deliverPush(ctx context.Context, payload obj) (*Delivery, error) {
	if _, ok := payload["installation"]; !ok {
		return nil, nil
	}
	return s.deliver(ctx, "push", payload)
}

// PushTag creates (or moves) a tag at ref's commit and delivers the push of refs/tags/<tag>.
func (s *Sim) PushTag(ctx context.Context, fullName, tag, ref string) (*Delivery, error) {
	payload, err := s.pushRef(fullName, "refs/tags/"+tag, ref)
	if err != nil {
		return nil, fmt.Errorf("push tag %s: %w", tag, err)
	}
	return s.deliverPush(ctx, payload)
}

// pushRef points fullRef ("refs/heads/main" or "refs/tags/v1", created if missing) at ref's
// commit, which the repository already has, and returns the push's payload. A branch push is
// forced unless the move only goes forward; a tag push never is.
func (s *Sim) pushRef(fullName, fullRef, ref string) (obj, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(fullName)
	if rp == nil {
		return nil, fmt.Errorf("repository %s not found", fullName)
	}
	c := rp.resolve(ref)
	if c == nil {
		return nil, fmt.Errorf("ref %s not found in %s", ref, fullName)
	}
	refs, name := rp.tags, strings.TrimPrefix(fullRef, "refs/tags/")
	branch, isBranch := strings.CutPrefix(fullRef, "refs/heads/")
	if isBranch {
		refs, name = rp.branches, branch
	}
	before := refs[name]
	refs[name] = c.sha
	forced := isBranch && before != "" && !isAncestor(rp, before, c.sha)
	return s.st.pushPayload(rp, fullRef, before, c.sha, forced), nil
}

// ForcePush moves a branch (created if missing) to a commit the repository already has, as
// `git push --force` does, and delivers the push; forced is true unless the move only goes
// forward. With no webhook URL set it only moves the branch.
func (s *Sim) ForcePush(ctx context.Context, fullName, branch, ref string) (*Delivery, error) {
	payload, err := s.pushRef(fullName, "refs/heads/"+branch, ref)
	if err != nil {
		return nil, fmt.Errorf("force push %s: %w", branch, err)
	}
	d, err := s.deliverPush(ctx, payload)
	if errors.Is(err, ErrNoWebhookURL) {
		return nil, nil
	}
	return d, err
}

// DeleteBranch removes a branch and delivers the push with deleted: true.
func (s *Sim) DeleteBranch(ctx context.Context, fullName, branch string) (*Delivery, error) {
	s.mu.Lock()
	rp := s.st.repo(fullName)
	if rp == nil || rp.branches[branch] == "" {
		s.mu.Unlock()
		return nil, fmt.Errorf("delete branch %s: not found in %s", branch, fullName)
	}
	before := rp.branches[branch]
	delete(rp.branches, branch)
	payload := s.st.pushPayload(rp, "refs/heads/"+branch, before, zeroSHA, false)
	s.mu.Unlock()
	return s.deliverPush(ctx, payload)
}

// checkSuiteJSON is the check_suite object of webhook payloads.
func (st *state) checkSuiteJSON(rp *repo, suiteID int64, headSHA string) obj {
	status, conclusion := "completed", any(nil)
	runs := st.runsFor(rp, headSHA)
	worst := ""
	for _, run := range runs {
		if run.SuiteID != suiteID {
			continue
		}
		if run.Status != "completed" {
			status = run.Status
		} else if worst == "" || run.Conclusion != "success" {
			worst = run.Conclusion
		}
	}
	if status == "completed" && worst != "" {
		conclusion = worst
	}
	var branch any
	var before any
	if b := branchOf(rp, headSHA); b != "" {
		branch = b
	}
	c := rp.commits[headSHA]
	if len(c.parents) > 0 {
		before = c.parents[0]
	}
	person := obj{"name": c.author.name, "email": c.author.email}
	return obj{
		"id": suiteID, "node_id": nodeID("CheckSuite", suiteID), "head_branch": branch, "head_sha": headSHA,
		"status": status, "conclusion": conclusion,
		"url":    fmt.Sprintf("%s/repos/%s/check-suites/%d", st.baseURL, rp.fullName(), suiteID),
		"before": before, "after": headSHA, "pull_requests": []any{}, "app": st.appJSON(),
		"created_at": iso(c.authored), "updated_at": iso(c.authored),
		"latest_check_runs_count": len(runs),
		"check_runs_url":          fmt.Sprintf("%s/repos/%s/check-suites/%d/check-runs", st.baseURL, rp.fullName(), suiteID),
		"head_commit": obj{
			"id": c.sha, "tree_id": c.treeSHA, "message": c.message, "timestamp": iso(c.authored),
			"author": person, "committer": person,
		},
	}
}

// checkRunEvent builds a check_run payload for an existing run. Called with s.mu held.
func (st *state) checkRunEvent(fullName string, checkRunID int64, action string) (obj, *repo, error) {
	rp := st.repo(fullName)
	run := st.checkRuns[checkRunID]
	if rp == nil || run == nil || run.repoID != rp.id {
		return nil, nil, fmt.Errorf("check_run %s: run %d not found in %s", action, checkRunID, fullName)
	}
	cr := st.checkRunJSON(rp, run)
	suite := st.checkSuiteJSON(rp, run.SuiteID, run.HeadSHA)
	delete(suite, "latest_check_runs_count")
	delete(suite, "check_runs_url")
	delete(suite, "head_commit")
	cr["check_suite"] = suite
	return obj{
		"action":       action,
		"check_run":    cr,
		"repository":   st.repository(rp, false),
		"sender":       st.simpleUser(rp.owner),
		"installation": st.installationRef(rp.installationID),
	}, rp, nil
}

// SendCheckRunRerequested delivers check_run rerequested (the "Re-run" button) for an existing run.
func (s *Sim) SendCheckRunRerequested(ctx context.Context, fullName string, checkRunID int64) (*Delivery, error) {
	s.mu.Lock()
	payload, _, err := s.st.checkRunEvent(fullName, checkRunID, "rerequested")
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.deliver(ctx, "check_run", payload)
}

// SendCheckRunRequestedAction delivers check_run requested_action for one of the run's own
// buttons, pressed by the repository's owner; see PressCheckRunButton.
func (s *Sim) SendCheckRunRequestedAction(ctx context.Context, fullName string, checkRunID int64, identifier string) (*Delivery, error) {
	return s.PressCheckRunButton(ctx, fullName, checkRunID, identifier, "")
}

// PressCheckRunButton delivers check_run requested_action for one of the run's own buttons,
// pressed by login (the sender; "" is the repository's owner). GitHub only shows buttons the
// run declared, so an unknown identifier is an error. GitHub shows them only to people with
// write access, but anybody may press here: a test shows the App checks the presser itself.
func (s *Sim) PressCheckRunButton(ctx context.Context, fullName string, checkRunID int64, identifier, login string) (*Delivery, error) {
	s.mu.Lock()
	payload, _, err := s.st.checkRunEvent(fullName, checkRunID, "requested_action")
	if err == nil && !slices.ContainsFunc(s.st.checkRuns[checkRunID].Actions, func(a Action) bool { return a.Identifier == identifier }) {
		err = fmt.Errorf("check_run requested_action: run %d has no action %q", checkRunID, identifier)
	}
	if err == nil && login != "" {
		payload["sender"] = s.st.simpleUser(login)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	payload["requested_action"] = obj{"identifier": identifier}
	return s.deliver(ctx, "check_run", payload)
}

// SendCheckSuiteRerequested delivers check_suite rerequested ("Re-run all") for the suite of a commit
// that has check runs.
func (s *Sim) SendCheckSuiteRerequested(ctx context.Context, fullName, sha string) (*Delivery, error) {
	s.mu.Lock()
	rp := s.st.repo(fullName)
	var suite *checkSuite
	if rp != nil {
		suite = s.st.suites[suiteKey{repoID: rp.id, headSHA: sha}]
	}
	if suite == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("check_suite rerequested: no suite for %s in %s", sha, fullName)
	}
	payload := obj{
		"action":       "rerequested",
		"check_suite":  s.st.checkSuiteJSON(rp, suite.id, sha),
		"repository":   s.st.repository(rp, false),
		"sender":       s.st.simpleUser(rp.owner),
		"installation": s.st.installationRef(rp.installationID),
	}
	s.mu.Unlock()
	return s.deliver(ctx, "check_suite", payload)
}

// SendInstallation changes the installation as the action says (created: as is; deleted: removed
// with its tokens; suspend/unsuspend) and delivers the installation event.
func (s *Sim) SendInstallation(ctx context.Context, installationID int64, action string) (*Delivery, error) {
	s.mu.Lock()
	inst := s.st.installations[installationID]
	if inst == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("installation %s: installation %d not found", action, installationID)
	}
	switch action {
	case "suspend":
		t := s.now().UTC().Truncate(time.Second)
		inst.suspendedAt = &t
	case "unsuspend":
		inst.suspendedAt = nil
	}
	payload := obj{
		"action":       action,
		"installation": s.st.installationJSON(inst),
		"sender":       s.st.simpleUser(inst.account),
	}
	if action == "created" || action == "deleted" {
		repos := []any{}
		for _, rp := range s.st.reposOf(installationID) {
			repos = append(repos, s.st.repositoryMini(rp))
		}
		payload["repositories"] = repos
		payload["requester"] = nil
	}
	if action == "deleted" {
		delete(s.st.installations, installationID)
		for _, rp := range s.st.reposOf(installationID) {
			rp.installationID = 0
		}
		for raw, t := range s.st.tokens {
			if t.kind == installationToken && t.installationID == installationID {
				delete(s.st.tokens, raw)
			}
		}
	}
	s.mu.Unlock()
	return s.deliver(ctx, "installation", payload)
}

// SendInstallationRepositories adds repositories to (creating empty ones as needed) or removes them
// from an installation, switching it to "selected", and delivers installation_repositories.
func (s *Sim) SendInstallationRepositories(ctx context.Context, installationID int64, action string, fullNames ...string) (*Delivery, error) {
	if action != "added" && action != "removed" {
		return nil, fmt.Errorf("installation_repositories: action %q is not added or removed", action)
	}
	s.mu.Lock()
	inst := s.st.installations[installationID]
	if inst == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("installation_repositories %s: installation %d not found", action, installationID)
	}
	changed := []any{}
	for _, name := range fullNames {
		rp := s.st.repo(name)
		if rp == nil && action == "added" {
			s.mu.Unlock()
			if err := s.CreateRepo(installationID, name, ""); err != nil {
				return nil, fmt.Errorf("installation_repositories added: %w", err)
			}
			s.mu.Lock()
			rp = s.st.repo(name)
		}
		if rp == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("installation_repositories removed: repository %s not found", name)
		}
		if action == "added" {
			rp.installationID = installationID
		} else {
			rp.installationID = 0
		}
		changed = append(changed, s.st.repositoryMini(rp))
	}
	inst.selection = "selected"
	payload := obj{
		"action":               action,
		"installation":         s.st.installationJSON(inst),
		"repository_selection": inst.selection,
		"repositories_added":   []any{},
		"repositories_removed": []any{},
		"requester":            nil,
		"sender":               s.st.simpleUser(inst.account),
	}
	payload["repositories_"+action] = changed
	s.mu.Unlock()
	return s.deliver(ctx, "installation_repositories", payload)
}

// SendPing delivers the ping GitHub sends when the App's webhook is set up.
func (s *Sim) SendPing(ctx context.Context) (*Delivery, error) {
	s.mu.Lock()
	a := &s.st.app
	created := iso(a.createdAt)
	payload := obj{
		"zen":     "Design for failure.",
		"hook_id": a.hookID,
		"hook": obj{
			"type": "App", "id": a.hookID, "name": "web", "active": true, "app_id": a.id,
			"events":     append([]string{}, a.events...),
			"config":     obj{"content_type": "json", "url": a.webhookURL, "insecure_ssl": "0"},
			"updated_at": created, "created_at": created,
			"deliveries_url": fmt.Sprintf("%s/app/hook/deliveries", s.st.baseURL),
			"last_response":  obj{"code": nil, "status": "unused", "message": nil},
		},
	}
	s.mu.Unlock()
	return s.deliver(ctx, "ping", payload)
}
