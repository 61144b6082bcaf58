package githubsim

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// installationTokenTTL is GitHub's: "Installation tokens expire one hour from the time you create them."
const installationTokenTTL = time.Hour

// AddUser adds a GitHub user who can sign in through the OAuth flow and returns the user's id.
func (s *Sim) AddUser(login string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.st.userByLogin(login); u != nil {
		return u.id
	}
	u := &user{id: s.st.id(), login: login, name: login, email: strings.ToLower(login) + "@users.noreply.sim", createdAt: s.now().UTC().Add(-time.Hour).Truncate(time.Second)}
	s.st.users[strings.ToLower(login)] = u
	return u.id
}

// AddInstallation installs the App on an account (a user added with AddUser, else an organization)
// with access to all its repositories, and returns the installation id. No webhook is sent; use
// SendInstallation for that.
func (s *Sim) AddInstallation(account string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := "Organization"
	if s.st.userByLogin(account) != nil {
		typ = "User"
	}
	inst := &installation{
		id: s.st.id(), account: account, accountID: s.st.accountID(account), accountType: typ,
		permissions: copyPerms(s.st.app.permissions), selection: "all", members: map[string]bool{},
		createdAt: s.now().UTC().Truncate(time.Second),
	}
	s.st.installations[inst.id] = inst
	return inst.id
}

// AddInstallationMember lets a user see an installation on an organization through /user/installations.
func (s *Sim) AddInstallationMember(installationID int64, login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.installations[installationID]
	if inst == nil {
		return fmt.Errorf("add member %s: installation %d not found", login, installationID)
	}
	inst.members[strings.ToLower(login)] = true
	return nil
}

// SetInstallationPermissions replaces what the installation was granted (e.g. to test a missing permission).
func (s *Sim) SetInstallationPermissions(installationID int64, perms map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.installations[installationID]
	if inst == nil {
		return fmt.Errorf("set permissions: installation %d not found", installationID)
	}
	inst.permissions = copyPerms(perms)
	return nil
}

func (s *Sim) getApp(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body := s.st.appJSON()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (s *Sim) listAppInstallations(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ids := make([]int64, 0, len(s.st.installations))
	for id := range s.st.installations {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	items := make([]any, 0, len(ids))
	for _, id := range ids {
		items = append(items, s.st.installationJSON(s.st.installations[id]))
	}
	s.mu.Unlock()
	writePage(w, r, items)
}

func (s *Sim) getAppInstallation(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	inst := s.st.installations[id]
	var body obj
	if inst != nil {
		body = s.st.installationJSON(inst)
	}
	s.mu.Unlock()
	if inst == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsREST)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Sim) getRepoInstallation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rp := s.st.repo(r.PathValue("owner") + "/" + r.PathValue("repo"))
	var body obj
	if rp != nil {
		body = s.st.installationJSON(s.st.installations[rp.installationID])
	}
	s.mu.Unlock()
	if rp == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsREST)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

type accessTokenRequest struct {
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

func (s *Sim) createAccessToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var req accessTokenRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.installations[id]
	if inst == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsREST)
		return
	}
	if inst.suspendedAt != nil {
		writeError(w, http.StatusForbidden, "This installation has been suspended", docsREST)
		return
	}
	if len(req.Repositories)+len(req.RepositoryIDs) > 500 {
		writeValidation(w, docsREST, fieldError{Resource: "InstallationToken", Field: "repositories", Code: "custom",
			Message: "Up to 500 repositories can be listed"})
		return
	}
	perms := copyPerms(inst.permissions)
	if req.Permissions != nil {
		for name, level := range req.Permissions {
			if !permits(inst.permissions[name], level) || (level != "read" && level != "write" && level != "admin") {
				writeError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.", docsREST)
				return
			}
		}
		perms = copyPerms(req.Permissions)
	}
	t := &token{kind: installationToken, installationID: id, permissions: perms, expiresAt: s.now().Add(installationTokenTTL)}
	selection := inst.selection
	var repos []any
	if len(req.Repositories) > 0 || len(req.RepositoryIDs) > 0 {
		chosen, ok := s.st.chooseRepos(id, req.Repositories, req.RepositoryIDs)
		if !ok {
			writeError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.", docsREST)
			return
		}
		t.repoIDs = map[int64]bool{}
		for _, rp := range chosen {
			if !t.repoIDs[rp.id] {
				t.repoIDs[rp.id] = true
				repos = append(repos, s.st.repository(rp, false))
			}
		}
		selection = "selected"
	}
	raw := randomToken("ghs_")
	s.st.tokens[raw] = t
	body := obj{
		"token":                raw,
		"expires_at":           iso(t.expiresAt),
		"permissions":          perms,
		"repository_selection": selection,
	}
	if repos != nil {
		body["repositories"] = repos
	}
	writeJSON(w, http.StatusCreated, body)
}

// chooseRepos finds the repositories of an installation a token request names, by name
// (case-insensitive) and by id; ok is false when one of them is not the installation's.
func (st *state) chooseRepos(instID int64, names []string, ids []int64) (chosen []*repo, ok bool) {
	byName := map[string]*repo{}
	byID := map[int64]*repo{}
	for _, rp := range st.reposOf(instID) {
		byName[strings.ToLower(rp.name)] = rp
		byID[rp.id] = rp
	}
	for _, name := range names {
		rp := byName[strings.ToLower(name)]
		if rp == nil {
			return nil, false
		}
		chosen = append(chosen, rp)
	}
	for _, id := range ids {
		rp := byID[id]
		if rp == nil {
			return nil, false
		}
		chosen = append(chosen, rp)
	}
	return chosen, true
}

// writePage answers a list endpoint whose body is a bare array with one page of items.
func writePage(w http.ResponseWriter, r *http.Request, items []any) {
	if page, ok := paginate(w, r, items); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

// paginate applies GitHub's page/per_page (default 30, max 100) and sets the Link header.
func paginate(w http.ResponseWriter, r *http.Request, items []any) ([]any, bool) {
	q := r.URL.Query()
	perPage, page := 30, 1
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusUnprocessableEntity, "Validation Failed", docsREST)
			return nil, false
		}
		perPage = min(n, 100)
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			n = 1
		}
		page = n
	}
	last := max((len(items)+perPage-1)/perPage, 1)
	link := func(p int, rel string) string {
		u := *r.URL
		qq := u.Query()
		qq.Set("page", strconv.Itoa(p))
		qq.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = qq.Encode()
		return fmt.Sprintf("<%s>; rel=%q", "http://"+r.Host+u.RequestURI(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	start := min((page-1)*perPage, len(items))
	end := min(start+perPage, len(items))
	return items[start:end], true
}
