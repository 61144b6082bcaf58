package githubsim

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pullRequest is what the Sim remembers of a pull request between its events.
type pullRequest struct {
	number      int
	title       string
	head        string // branch in headRepo
	headRepo    string // full name of the head's repository; "" is the base repository
	headSHA     string
	headDeleted bool // the head's repository is gone: head.repo is null
	base        string
	author      string
	association string
	open        bool
	merged      bool
	mergedBy    string
	createdAt   time.Time
	updatedAt   time.Time
}

// PullRequest describes a pull request for SendPullRequest.
type PullRequest struct {
	Number int
	Title  string
	// Head is the source branch, in HeadRepo when set, else in the base repository.
	Head string
	// Base is the target branch (default: the repository's default branch).
	Base string
	// Before is the previous head sha of a "synchronize" (default: the head the Sim last sent).
	Before string
	// HeadRepo is a fork made with Fork that holds Head; empty for a branch of the base repository.
	HeadRepo string
	// Author opened the pull request (default: the owner of the head's repository).
	Author string
	// AuthorAssociation replaces the association worked out from the author's role on the
	// base repository: OWNER, MEMBER (installation member), COLLABORATOR (a role set with
	// SetRepoRole), CONTRIBUTOR (a merged pull request before) or FIRST_TIME_CONTRIBUTOR.
	AuthorAssociation string
	// Sender caused the event (default: Author).
	Sender string
	// Merged makes a "closed" pull request a merged one.
	Merged bool
	// HeadRepoDeleted sends head.repo as null, as GitHub does once a fork is deleted.
	HeadRepoDeleted bool
}

// Fork copies the repository base as owner's fork, owner/<name>: a user's repository (the user
// is added if needed) with base's commits and branches, on which the App is not installed, so
// commits to it send no webhooks and installation tokens cannot read it. It returns the fork's
// full name.
func (s *Sim) Fork(base, owner string) (string, error) {
	s.AddUser(owner)
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(base)
	if rp == nil {
		return "", fmt.Errorf("fork %s: repository not found", base)
	}
	full := owner + "/" + rp.name
	if s.st.repo(full) != nil {
		return "", fmt.Errorf("fork %s: %s already exists", base, full)
	}
	now := s.now().UTC().Truncate(time.Second)
	fork := &repo{
		id: s.st.id(), owner: s.st.userByLogin(owner).login, name: rp.name, defaultBranch: rp.defaultBranch,
		branches: copyRefs(rp.branches), tags: copyRefs(rp.tags), commits: map[string]*commit{},
		forkOf: rp.fullName(), createdAt: now, pushedAt: now,
	}
	for sha, c := range rp.commits {
		fork.commits[sha] = c // commits are never changed once made
	}
	s.st.repos[strings.ToLower(full)] = fork
	return full, nil
}

func copyRefs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SendPullRequest delivers a pull_request event (opened, synchronize, reopened, closed, ...) whose
// head sha is the head branch's current commit, and keeps the pull request's state: comments can
// be made on it once it was sent. For a fork, the head's commits are copied into the base
// repository, as GitHub keeps them under refs/pull/<n>/head, so the installation reads them.
func (s *Sim) SendPullRequest(ctx context.Context, fullName, action string, pr PullRequest) (*Delivery, error) {
	s.mu.Lock()
	payload, err := s.st.pullRequestEvent(fullName, action, pr, s.now())
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("pull_request %s: %w", action, err)
	}
	return s.deliver(ctx, "pull_request", payload)
}

// pullRequestEvent records the pull request and builds its event. Called with s.mu held.
func (st *state) pullRequestEvent(fullName, action string, in PullRequest, now time.Time) (obj, error) {
	rp := st.repo(fullName)
	if rp == nil {
		return nil, fmt.Errorf("repository %s not found", fullName)
	}
	headRepo := rp
	if in.HeadRepo != "" {
		if headRepo = st.repo(in.HeadRepo); headRepo == nil || !strings.EqualFold(headRepo.forkOf, rp.fullName()) {
			return nil, fmt.Errorf("head repository %s is not a fork of %s", in.HeadRepo, fullName)
		}
	}
	if in.Base == "" {
		in.Base = rp.defaultBranch
	}
	headSHA := headRepo.branches[in.Head]
	if headSHA == "" || rp.branches[in.Base] == "" {
		return nil, fmt.Errorf("branches %s (in %s) and %s (in %s) must exist", in.Head, headRepo.fullName(), in.Base, fullName)
	}
	for sha, c := range headRepo.commits {
		if rp.commits[sha] == nil {
			rp.commits[sha] = c
		}
	}
	if rp.pulls == nil {
		rp.pulls = map[int]*pullRequest{}
	}
	pr := rp.pulls[in.Number]
	if pr == nil {
		pr = &pullRequest{number: in.Number, createdAt: now.UTC().Truncate(time.Second)}
		rp.pulls[in.Number] = pr
	}
	if in.Before == "" && action == "synchronize" {
		in.Before = pr.headSHA
	}
	if in.Author == "" {
		in.Author = headRepo.owner
	}
	if in.Sender == "" {
		in.Sender = in.Author
	}
	if in.AuthorAssociation == "" {
		in.AuthorAssociation = st.association(rp, in.Author)
	}
	if in.Title == "" {
		in.Title = "Update " + in.Head
	}
	pr.title, pr.head, pr.headRepo, pr.headSHA, pr.base, pr.author = in.Title, in.Head, in.HeadRepo, headSHA, in.Base, in.Author
	pr.association, pr.headDeleted, pr.updatedAt = in.AuthorAssociation, in.HeadRepoDeleted, now.UTC().Truncate(time.Second)
	pr.open = action != "closed"
	pr.merged = action == "closed" && in.Merged
	if pr.merged {
		pr.mergedBy = in.Sender
	}
	payload := obj{
		"action":       action,
		"number":       in.Number,
		"pull_request": st.pullRequestJSON(rp, pr),
		"repository":   st.repository(rp, false),
		"installation": st.installationRef(rp.installationID),
		"sender":       st.simpleUser(in.Sender),
	}
	if action == "synchronize" {
		payload["before"] = in.Before
		payload["after"] = headSHA
	}
	return payload, nil
}

// getPullRequest is GET /repos/{owner}/{repo}/pulls/{pull_number}: the pull request as its last
// event left it.
func (s *Sim) getPullRequest(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := strconv.Atoi(r.PathValue("pull_number"))
	if err != nil || a.repo.pulls[n] == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
		return
	}
	writeJSON(w, http.StatusOK, s.st.pullRequestJSON(a.repo, a.repo.pulls[n]))
}

// association is the author_association GitHub gives login on rp's pull requests.
func (st *state) association(rp *repo, login string) string {
	inst := st.installations[rp.installationID]
	switch role, hasRole := rp.roles[strings.ToLower(login)]; {
	case strings.EqualFold(rp.owner, login):
		return "OWNER"
	case inst != nil && inst.members[strings.ToLower(login)]:
		return "MEMBER"
	case hasRole && role != "none":
		return "COLLABORATOR"
	}
	for _, pr := range rp.pulls {
		if pr.merged && strings.EqualFold(pr.author, login) {
			return "CONTRIBUTOR"
		}
	}
	return "FIRST_TIME_CONTRIBUTOR"
}

// pullRequestJSON is GitHub's pull-request object, as of the last event sent for it.
func (st *state) pullRequestJSON(rp *repo, pr *pullRequest) obj {
	headRepo := rp
	if pr.headRepo != "" {
		headRepo = st.repo(pr.headRepo)
	}
	api := fmt.Sprintf("%s/repos/%s/pulls/%d", st.baseURL, rp.fullName(), pr.number)
	issue := fmt.Sprintf("%s/repos/%s/issues/%d", st.baseURL, rp.fullName(), pr.number)
	html := fmt.Sprintf("%s/%s/pull/%d", st.baseURL, rp.fullName(), pr.number)
	updated := iso(pr.updatedAt)
	state, closedAt := "open", any(nil)
	if !pr.open {
		state, closedAt = "closed", updated
	}
	var mergedAt, mergeSHA, mergedBy any
	if pr.merged {
		// A merge commit is not made: the head sha stands for it, as after a fast-forward.
		mergedAt, mergeSHA, mergedBy = updated, pr.headSHA, st.simpleUser(pr.mergedBy)
	}
	headRepoJSON := any(st.repository(headRepo, false))
	if headRepo.forkOf != "" {
		headRepoJSON.(obj)["fork"] = true
	}
	if pr.headDeleted {
		headRepoJSON = nil
	}
	head := obj{"label": headRepo.owner + ":" + pr.head, "ref": pr.head, "sha": pr.headSHA, "user": st.simpleUser(headRepo.owner), "repo": headRepoJSON}
	base := obj{"label": rp.owner + ":" + pr.base, "ref": pr.base, "sha": rp.branches[pr.base], "user": st.simpleUser(rp.owner), "repo": st.repository(rp, false)}
	href := func(u string) obj { return obj{"href": u} }
	statuses := st.baseURL + "/repos/" + rp.fullName() + "/statuses/" + pr.headSHA
	reviewComment := st.baseURL + "/repos/" + rp.fullName() + "/pulls/comments{/number}"
	return obj{
		"url": api, "id": int64(pr.number) + rp.id*1000, "node_id": nodeID("PullRequest", int64(pr.number)+rp.id*1000),
		"html_url": html, "diff_url": html + ".diff", "patch_url": html + ".patch", "issue_url": issue,
		"number": pr.number, "state": state, "locked": false, "title": pr.title, "user": st.simpleUser(pr.author),
		"body": nil, "created_at": iso(pr.createdAt), "updated_at": updated, "closed_at": closedAt, "merged_at": mergedAt,
		"merge_commit_sha": mergeSHA, "assignee": nil, "assignees": []any{}, "requested_reviewers": []any{},
		"requested_teams": []any{}, "labels": []any{}, "milestone": nil,
		"commits_url": api + "/commits", "review_comments_url": api + "/comments",
		"review_comment_url": reviewComment, "comments_url": issue + "/comments", "statuses_url": statuses,
		"head": head, "base": base,
		"_links": obj{
			"self": href(api), "html": href(html), "issue": href(issue), "comments": href(issue + "/comments"),
			"review_comments": href(api + "/comments"), "review_comment": href(reviewComment),
			"commits": href(api + "/commits"), "statuses": href(statuses),
		},
		"author_association": pr.association, "auto_merge": nil, "active_lock_reason": nil, "draft": false,
		"merged": pr.merged, "mergeable": nil, "rebaseable": nil, "mergeable_state": "unknown", "merged_by": mergedBy,
		"comments": 0, "review_comments": 0, "maintainer_can_modify": false, "commits": 1,
		"additions": 0, "deletions": 0, "changed_files": 0,
	}
}

// openPullsAt lists the open pull requests of rp whose head is sha in rp itself (not a fork):
// the ones GitHub puts in a check run's pull_requests.
func (st *state) openPullsAt(rp *repo, sha string) []*pullRequest {
	var out []*pullRequest
	for _, pr := range rp.pulls {
		if pr.open && pr.headRepo == "" && pr.headSHA == sha {
			out = append(out, pr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}
