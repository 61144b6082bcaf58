package githubsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	docsCreateStatus = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
	// maxDescription is the 140-character limit GitHub applies to status and deployment-status descriptions.
	maxDescription = 140
	// maxStatusesPerContext is GitHub's "limit of 1000 statuses per sha and context within a repository".
	maxStatusesPerContext = 1000
)

// Status is one commit status as the Sim holds it.
type Status struct {
	ID          int64
	SHA         string
	State       string
	Context     string
	Description string
	TargetURL   string
	CreatedAt   time.Time
}

type commitStatus struct {
	Status
	repoID int64
}

var statusStates = []string{"error", "failure", "pending", "success"}

type statusRequest struct {
	State       *string `json:"state"`
	TargetURL   *string `json:"target_url"`
	Description *string `json:"description"`
	Context     *string `json:"context"`
}

// validateStateAndDescription checks the two fields commit statuses and deployment statuses
// share: a state from states, and a description of at most maxDescription characters.
func validateStateAndDescription(resource string, state *string, states []string, description *string) []fieldError {
	var errs []fieldError
	switch {
	case state == nil:
		errs = append(errs, fieldError{Resource: resource, Field: "state", Code: "missing_field"})
	case !slices.Contains(states, *state):
		errs = append(errs, fieldError{Resource: resource, Field: "state", Code: "invalid"})
	}
	if description != nil && utf8.RuneCountInString(*description) > maxDescription {
		// The exact body GitHub answers with (quoted in github-limits.md).
		errs = append(errs, fieldError{Resource: resource, Field: "description", Code: "custom",
			Message: fmt.Sprintf("description is too long (maximum is %d characters)", maxDescription)})
	}
	return errs
}

func (s *Sim) createStatus(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req statusRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if errs := validateStateAndDescription("Status", req.State, statusStates, req.Description); len(errs) > 0 {
		writeValidation(w, docsCreateStatus, errs...)
		return
	}
	ctxName := "default"
	if req.Context != nil && *req.Context != "" {
		ctxName = *req.Context
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sha := r.PathValue("sha")
	c := a.repo.commits[strings.ToLower(sha)]
	if c == nil {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+sha, docsCreateStatus)
		return
	}
	n := 0
	for _, st := range s.st.statuses {
		// "This field is case-insensitive."
		if st.repoID == a.repo.id && st.SHA == c.sha && strings.EqualFold(st.Context, ctxName) {
			n++
		}
	}
	if n >= maxStatusesPerContext {
		writeValidation(w, docsCreateStatus, fieldError{Resource: "Status", Code: "custom",
			Message: "This SHA and context has reached the maximum number of statuses."})
		return
	}
	st := &commitStatus{repoID: a.repo.id, Status: Status{
		ID: s.st.id(), SHA: c.sha, State: *req.State, Context: ctxName, CreatedAt: s.now().UTC().Truncate(time.Second),
	}}
	if req.Description != nil {
		st.Description = *req.Description
	}
	if req.TargetURL != nil {
		st.TargetURL = *req.TargetURL
	}
	s.st.statuses = append(s.st.statuses, st)
	w.Header().Set("Location", s.st.baseURL+"/repos/"+a.repo.fullName()+"/statuses/"+c.sha)
	writeJSON(w, http.StatusCreated, s.st.statusJSON(a.repo, st))
}

func (s *Sim) listStatuses(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	c := a.repo.resolve(r.PathValue("ref"))
	items := []any{}
	if c != nil {
		list := s.st.statusesFor(a.repo, c.sha)
		for i := len(list) - 1; i >= 0; i-- { // reverse chronological, as documented
			items = append(items, s.st.statusJSON(a.repo, list[i]))
		}
	}
	s.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/commits/statuses#list-commit-statuses-for-a-reference")
		return
	}
	writePage(w, r, items)
}

func (st *state) statusesFor(rp *repo, sha string) []*commitStatus {
	var out []*commitStatus
	for _, cs := range st.statuses {
		if cs.repoID == rp.id && cs.SHA == sha {
			out = append(out, cs)
		}
	}
	return out
}

// botUser is the App's bot account, the creator of everything an installation token writes.
func (st *state) botUser() obj {
	u := st.simpleUser(st.app.slug + "[bot]")
	u["type"] = "Bot"
	u["id"] = st.app.id + 40000000
	u["node_id"] = nodeID("Bot", st.app.id+40000000)
	u["html_url"] = st.baseURL + "/apps/" + st.app.slug
	return u
}

func (st *state) statusJSON(rp *repo, cs *commitStatus) obj {
	return obj{
		"url":         st.baseURL + "/repos/" + rp.fullName() + "/statuses/" + cs.SHA,
		"avatar_url":  fmt.Sprintf("%s/avatars/in/%d?v=4", st.baseURL, st.app.id),
		"id":          cs.ID,
		"node_id":     nodeID("StatusContext", cs.ID),
		"state":       cs.State,
		"description": strOrNil(cs.Description),
		"target_url":  strOrNil(cs.TargetURL),
		"context":     cs.Context,
		"created_at":  iso(cs.CreatedAt),
		"updated_at":  iso(cs.CreatedAt),
		"creator":     st.botUser(),
	}
}

// Statuses returns a commit's statuses, oldest first.
func (s *Sim) Statuses(fullName, sha string) []Status {
	return readRepo(s, fullName, func(rp *repo) (out []Status) {
		for _, cs := range s.st.statusesFor(rp, sha) {
			out = append(out, cs.Status)
		}
		return out
	})
}
