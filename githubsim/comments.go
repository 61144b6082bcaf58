package githubsim

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

const (
	docsCreateIssueComment = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
	docsUpdateIssueComment = "https://docs.github.com/rest/issues/comments#update-an-issue-comment"
	// maxCommentChars is GitHub's limit on a comment's body ("Body is too long (maximum is
	// 65536 characters)").
	maxCommentChars = 65536
)

// commentPermissions are the permissions GitHub accepts for comments on a pull request: either
// one (a comment on a plain issue would need issues; the Sim has only pull requests).
var commentPermissions = []string{"issues", "pull_requests"}

// IssueComment is a comment on a pull request's conversation, as the Sim holds it.
type IssueComment struct {
	ID     int64
	Number int
	Body   string
	// Author is the login that wrote it: the App's bot ("<slug>[bot]") for comments made through the API.
	Author    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type issueComment struct {
	IssueComment
	repoID int64
}

type commentRequest struct {
	Body *string `json:"body"`
}

// validBody checks a comment body as GitHub does: required, at most maxCommentChars.
func validBody(w http.ResponseWriter, req commentRequest, doc string) bool {
	switch {
	case req.Body == nil:
		writeValidation(w, doc, fieldError{Resource: "IssueComment", Field: "body", Code: "missing_field"})
	case len([]rune(*req.Body)) > maxCommentChars:
		writeValidation(w, doc, fieldError{Resource: "IssueComment", Field: "body", Code: "custom",
			Message: fmt.Sprintf("Body is too long (maximum is %d characters)", maxCommentChars)})
	default:
		return true
	}
	return false
}

// issueReads routes GET …/issues/{issue_number}/comments and GET …/issues/comments/{comment_id},
// two patterns net/http refuses side by side (both match …/issues/comments/comments; GitHub reads
// that as comment "comments", which is 404).
func issueReads(list, get http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, b := r.PathValue("a"), r.PathValue("b")
		switch {
		case a == "comments":
			r.SetPathValue("comment_id", b)
			get(w, r)
		case b == "comments":
			r.SetPathValue("issue_number", a)
			list(w, r)
		default:
			writeError(w, http.StatusNotFound, "Not Found", docsREST)
		}
	}
}

// createIssueComment is POST /repos/{owner}/{repo}/issues/{issue_number}/comments.
func (s *Sim) createIssueComment(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req commentRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := strconv.Atoi(r.PathValue("issue_number"))
	if err != nil || a.repo.pulls[n] == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsCreateIssueComment)
		return
	}
	if !validBody(w, req, docsCreateIssueComment) {
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	c := &issueComment{repoID: a.repo.id, IssueComment: IssueComment{
		ID: s.st.id(), Number: n, Body: *req.Body, Author: s.st.app.slug + "[bot]", CreatedAt: now, UpdatedAt: now,
	}}
	s.st.comments[c.ID] = c
	writeJSON(w, http.StatusCreated, s.st.issueCommentJSON(a.repo, c))
}

// listIssueComments is GET /repos/{owner}/{repo}/issues/{issue_number}/comments, oldest first.
func (s *Sim) listIssueComments(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	n, err := strconv.Atoi(r.PathValue("issue_number"))
	if err != nil || a.repo.pulls[n] == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/comments#list-issue-comments")
		return
	}
	items := []any{}
	for _, c := range s.st.commentsOn(a.repo, n) {
		items = append(items, s.st.issueCommentJSON(a.repo, c))
	}
	s.mu.Unlock()
	writePage(w, r, items)
}

// getIssueComment is GET /repos/{owner}/{repo}/issues/comments/{comment_id}.
func (s *Sim) getIssueComment(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.commentIn(a.repo, r.PathValue("comment_id"))
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/comments#get-an-issue-comment")
		return
	}
	writeJSON(w, http.StatusOK, s.st.issueCommentJSON(a.repo, c))
}

// updateIssueComment is PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}: a deleted
// comment is 404.
func (s *Sim) updateIssueComment(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req commentRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.commentIn(a.repo, r.PathValue("comment_id"))
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsUpdateIssueComment)
		return
	}
	if !validBody(w, req, docsUpdateIssueComment) {
		return
	}
	c.Body, c.UpdatedAt = *req.Body, s.now().UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, s.st.issueCommentJSON(a.repo, c))
}

// deleteIssueComment is DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}: 204.
func (s *Sim) deleteIssueComment(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.commentIn(a.repo, r.PathValue("comment_id"))
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/comments#delete-an-issue-comment")
		return
	}
	delete(s.st.comments, c.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (st *state) commentIn(rp *repo, id string) *issueComment {
	return inRepo(st.comments, rp, id, func(c *issueComment) int64 { return c.repoID })
}

// commentsOn lists a pull request's comments, oldest first.
func (st *state) commentsOn(rp *repo, number int) []*issueComment {
	var out []*issueComment
	for _, c := range st.comments {
		if c.repoID == rp.id && c.Number == number {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (st *state) issueCommentJSON(rp *repo, c *issueComment) obj {
	api := st.baseURL + "/repos/" + rp.fullName()
	return obj{
		"id":                       c.ID,
		"node_id":                  nodeID("IssueComment", c.ID),
		"url":                      fmt.Sprintf("%s/issues/comments/%d", api, c.ID),
		"html_url":                 fmt.Sprintf("%s/%s/pull/%d#issuecomment-%d", st.baseURL, rp.fullName(), c.Number, c.ID),
		"issue_url":                fmt.Sprintf("%s/issues/%d", api, c.Number),
		"body":                     c.Body,
		"user":                     st.botUser(),
		"created_at":               iso(c.CreatedAt),
		"updated_at":               iso(c.UpdatedAt),
		"author_association":       "NONE",
		"performed_via_github_app": st.appJSON(),
		"reactions": obj{
			"url": fmt.Sprintf("%s/issues/comments/%d/reactions", api, c.ID), "total_count": 0, "+1": 0, "-1": 0,
			"laugh": 0, "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0,
		},
	}
}

// IssueComments returns a pull request's comments, oldest first.
func (s *Sim) IssueComments(fullName string, number int) []IssueComment {
	return readRepo(s, fullName, func(rp *repo) (out []IssueComment) {
		for _, c := range s.st.commentsOn(rp, number) {
			out = append(out, c.IssueComment)
		}
		return out
	})
}

// DeleteIssueComment removes a comment, as a person with write access may on GitHub; updating
// it afterwards is 404.
func (s *Sim) DeleteIssueComment(fullName string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(fullName)
	if rp == nil {
		return fmt.Errorf("delete comment %d: repository %s not found", id, fullName)
	}
	if c := s.st.comments[id]; c == nil || c.repoID != rp.id {
		return fmt.Errorf("delete comment %d: not found in %s", id, fullName)
	}
	delete(s.st.comments, id)
	return nil
}
