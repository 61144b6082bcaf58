package githubsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

const (
	docsREST     = "https://docs.github.com/rest"
	rateLimit    = 5000
	maxBodyBytes = 32 << 20
)

// Handler serves the REST API and the github.com web routes (OAuth, manifest) on one host.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	// API: the App.
	mux.HandleFunc("GET /app", s.jwtOnly(s.getApp))
	mux.HandleFunc("GET /app/installations", s.jwtOnly(s.listAppInstallations))
	mux.HandleFunc("GET /app/installations/{id}", s.jwtOnly(s.getAppInstallation))
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.jwtOnly(s.createAccessToken))
	mux.HandleFunc("GET /repos/{owner}/{repo}/installation", s.jwtOnly(s.getRepoInstallation))
	mux.HandleFunc("GET /app/hook/deliveries", s.jwtOnly(s.listHookDeliveries))
	mux.HandleFunc("GET /app/hook/deliveries/{delivery_id}", s.jwtOnly(s.getHookDelivery))
	mux.HandleFunc("POST /app/hook/deliveries/{delivery_id}/attempts", s.jwtOnly(s.redeliverHookDelivery))
	mux.HandleFunc("POST /app-manifests/{code}/conversions", s.convertManifest)
	// API: repositories.
	mux.HandleFunc("GET /repos/{owner}/{repo}", s.repoCall("metadata", "read", s.getRepo))
	mux.HandleFunc("GET /repos/{owner}/{repo}/collaborators/{username}/permission", s.repoCall("metadata", "read", s.getCollaboratorPermission))
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}", s.repoCall("contents", "read", s.getCommit))
	mux.HandleFunc("GET /repos/{owner}/{repo}/git/ref/{ref...}", s.repoCall("contents", "read", s.getRef))
	mux.HandleFunc("GET /repos/{owner}/{repo}/compare/{basehead}", s.repoCall("contents", "read", s.compare))
	mux.HandleFunc("GET /repos/{owner}/{repo}/contents/{path...}", s.repoCall("contents", "read", s.getContents))
	mux.HandleFunc("GET /repos/{owner}/{repo}/tarball", s.repoCall("contents", "read", s.getTarball))
	mux.HandleFunc("GET /repos/{owner}/{repo}/tarball/{ref...}", s.repoCall("contents", "read", s.getTarball))
	mux.HandleFunc("POST /repos/{owner}/{repo}/check-runs", s.repoCall("checks", "write", s.createCheckRun))
	mux.HandleFunc("GET /repos/{owner}/{repo}/check-runs/{id}", s.repoCall("checks", "read", s.getCheckRun))
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/check-runs/{id}", s.repoCall("checks", "write", s.updateCheckRun))
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", s.repoCall("checks", "read", s.listCheckRunsForRef))
	mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.repoCall("statuses", "write", s.createStatus))
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/statuses", s.repoCall("statuses", "read", s.listStatuses))
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{pull_number}", s.repoCall("pull_requests", "read", s.getPullRequest))
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", s.repoCallAny(commentPermissions, "write", s.createIssueComment))
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{a}/{b}", issueReads(
		s.repoCallAny(commentPermissions, "read", s.listIssueComments), s.repoCallAny(commentPermissions, "read", s.getIssueComment)))
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", s.repoCallAny(commentPermissions, "write", s.updateIssueComment))
	mux.HandleFunc("DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}", s.repoCallAny(commentPermissions, "write", s.deleteIssueComment))
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments", s.repoCall("deployments", "write", s.createDeployment))
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments", s.repoCall("deployments", "read", s.listDeployments))
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", s.repoCall("deployments", "write", s.createDeploymentStatus))
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}/statuses", s.repoCall("deployments", "read", s.listDeploymentStatuses))
	// API: the signed-in user.
	mux.HandleFunc("GET /user", s.userOnly(s.getUser))
	mux.HandleFunc("GET /user/installations", s.userOnly(s.listUserInstallations))
	mux.HandleFunc("GET /user/installations/{id}/repositories", s.userOnly(s.listUserInstallationRepos))
	// Web (github.com).
	mux.HandleFunc("GET /avatars/u/{id}", serveAvatar)
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.exchangeCode)
	mux.HandleFunc("GET /settings/apps/new", s.newAppFromManifest)
	mux.HandleFunc("POST /settings/apps/new", s.newAppFromManifest)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found", docsREST)
	})
	return s.record(s.faulty(mux))
}

// DownloadHandler serves the short-lived tarball URLs that GET /repos/{o}/{r}/tarball redirects to.
func (s *Sim) DownloadHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{owner}/{repo}/legacy.tar.gz/{sha}", s.serveDownload)
	mux.HandleFunc("GET /{owner}/{repo}/raw/{sha}/{path...}", s.serveRaw)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return s.record(mux)
}

// callInfoKey carries the per-request *callInfo through the context.
type callInfoKey struct{}

type callInfo struct {
	credential CredentialKind
	rateKey    string
	// faulted is set when a Fault answered the call.
	faulted bool
}

func info(ctx context.Context) *callInfo {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return ci
	}
	return &callInfo{}
}

// record wraps every request: it keeps the body for the call log, sets GitHub's common headers and
// appends a Call once the handler has answered.
func (s *Sim) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
		r.Body = io.NopCloser(bytes.NewReader(body))
		ci := &callInfo{credential: CredentialNone, rateKey: "ip:" + r.RemoteAddr}
		r = r.WithContext(context.WithValue(r.Context(), callInfoKey{}, ci))
		rw := &statusWriter{ResponseWriter: w, sim: s, ci: ci, status: http.StatusOK}
		next.ServeHTTP(rw, r)
		if !rw.wrote {
			rw.WriteHeader(http.StatusOK)
		}
		s.mu.Lock()
		s.st.calls = append(s.st.calls, Call{
			Method:     r.Method,
			Path:       r.URL.Path,
			Query:      r.URL.RawQuery,
			Status:     rw.status,
			Body:       body,
			Credential: ci.credential,
			Faulted:    ci.faulted,
			At:         s.now(),
		})
		s.mu.Unlock()
	})
}

// statusWriter remembers the status and adds GitHub's per-response headers just before they are sent,
// when the credential (and so the rate-limit bucket) is known.
type statusWriter struct {
	http.ResponseWriter
	sim    *Sim
	ci     *callInfo
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
	h := w.Header()
	s := w.sim
	// Handlers write while holding s.mu, so the counters have their own lock.
	s.rateMu.Lock()
	s.rate[w.ci.rateKey]++
	used := s.rate[w.ci.rateKey]
	s.rateMu.Unlock()
	limit := rateLimit
	if w.ci.credential == CredentialNone {
		limit = 60
	}
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	h.Set("X-GitHub-Request-Id", randomHex(8))
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(limit-used, 0)))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Add(time.Hour).Truncate(time.Hour).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// apiError is GitHub's error body.
type apiError struct {
	Message          string       `json:"message"`
	Errors           []fieldError `json:"errors,omitempty"`
	DocumentationURL string       `json:"documentation_url"`
	Status           string       `json:"status"`
}

// fieldError is one entry of a 422 "Validation Failed" body.
type fieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

func writeError(w http.ResponseWriter, status int, message, doc string) {
	writeJSON(w, status, apiError{Message: message, DocumentationURL: doc, Status: strconv.Itoa(status)})
}

func writeValidation(w http.ResponseWriter, doc string, errs ...fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, apiError{
		Message: "Validation Failed", Errors: errs, DocumentationURL: doc, Status: "422",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"message":"Server Error","documentation_url":"` + docsREST + `","status":"500"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeBody reads a JSON request body; GitHub answers 400 "Problems parsing JSON" to malformed JSON.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, _ := io.ReadAll(r.Body)
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", docsREST)
		return false
	}
	return true
}

// serveAvatar answers the avatar_url of simulated accounts (GitHub serves those from its
// avatars host) with a small generated picture, so pages showing avatars render.
func serveAvatar(w http.ResponseWriter, r *http.Request) {
	var hue int
	for _, c := range r.PathValue("id") {
		hue = (hue*31 + int(c)) % 360
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=300")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">`+
		`<rect width="64" height="64" rx="32" fill="hsl(%d,55%%,55%%)"/></svg>`, hue)
}
