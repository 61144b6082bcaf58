package githubsim

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

const (
	docsCreateCheckRun = "https://docs.github.com/rest/checks/runs#create-a-check-run"
	docsUpdateCheckRun = "https://docs.github.com/rest/checks/runs#update-a-check-run"
	maxOutputChars     = 65535
	maxAnnotations     = 50
	maxActions         = 3
)

// CheckRun is a check run as the Sim holds it, for tests to assert on.
type CheckRun struct {
	ID          int64
	SuiteID     int64
	Name        string
	HeadSHA     string
	Status      string
	Conclusion  string
	ExternalID  string
	DetailsURL  string
	Title       string
	Summary     string
	Text        string
	Annotations []Annotation
	Actions     []Action
	StartedAt   time.Time
	CompletedAt time.Time
}

// Annotation is one check-run annotation as sent by the client.
type Annotation struct {
	Path            string  `json:"path"`
	StartLine       *int    `json:"start_line"`
	EndLine         *int    `json:"end_line"`
	StartColumn     *int    `json:"start_column,omitempty"`
	EndColumn       *int    `json:"end_column,omitempty"`
	AnnotationLevel string  `json:"annotation_level"`
	Message         string  `json:"message"`
	Title           *string `json:"title,omitempty"`
	RawDetails      *string `json:"raw_details,omitempty"`
}

// Action is one requested-action button of a check run.
type Action struct {
	Label       string `json:"label"`
	Description string `json:"description"`
	Identifier  string `json:"identifier"`
}

type checkRun struct {
	CheckRun
	repoID int64
}

type checkRunOutput struct {
	Title       *string       `json:"title"`
	Summary     *string       `json:"summary"`
	Text        *string       `json:"text"`
	Annotations []Annotation  `json:"annotations"`
	Images      []outputImage `json:"images"`
}

type outputImage struct {
	Alt      *string `json:"alt"`
	ImageURL *string `json:"image_url"`
	Caption  *string `json:"caption"`
}

type checkRunRequest struct {
	Name        *string         `json:"name"`
	HeadSHA     *string         `json:"head_sha"`
	DetailsURL  *string         `json:"details_url"`
	ExternalID  *string         `json:"external_id"`
	Status      *string         `json:"status"`
	StartedAt   *string         `json:"started_at"`
	Conclusion  *string         `json:"conclusion"`
	CompletedAt *string         `json:"completed_at"`
	Output      *checkRunOutput `json:"output"`
	Actions     []Action        `json:"actions"`
}

var (
	checkStatuses    = []string{"queued", "in_progress", "completed", "waiting", "requested", "pending"}
	checkConclusions = []string{"action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"}
	annotationLevels = []string{"notice", "warning", "failure"}
)

// checkRunErrors collects what is wrong with one check run request.
type checkRunErrors []fieldError

func (e *checkRunErrors) bad(field, code, msg string) {
	*e = append(*e, fieldError{Resource: "CheckRun", Field: field, Code: code, Message: msg})
}

// validateCheckRun applies the published limits of the create and update operations.
func validateCheckRun(req *checkRunRequest, create bool) []fieldError {
	var errs checkRunErrors
	if create {
		if req.Name == nil || *req.Name == "" {
			errs.bad("name", "missing_field", "")
		}
		if req.HeadSHA == nil || *req.HeadSHA == "" {
			errs.bad("head_sha", "missing_field", "")
		}
	}
	if req.Status != nil && !slices.Contains(checkStatuses, *req.Status) {
		errs.bad("status", "invalid", fmt.Sprintf("%s is not a member of %v", *req.Status, checkStatuses))
	} else if req.Status != nil && (*req.Status == "waiting" || *req.Status == "requested" || *req.Status == "pending") {
		errs.bad("status", "custom", "Only GitHub Actions can set a status of waiting, pending, or requested.")
	}
	if req.Conclusion != nil {
		switch {
		case !slices.Contains(checkConclusions, *req.Conclusion):
			errs.bad("conclusion", "invalid", fmt.Sprintf("%s is not a member of %v", *req.Conclusion, checkConclusions))
		case *req.Conclusion == "stale":
			errs.bad("conclusion", "custom", "You cannot change a check run conclusion to stale, only GitHub can set this.")
		}
	}
	if req.Conclusion == nil && ((req.Status != nil && *req.Status == "completed") || req.CompletedAt != nil) {
		errs.bad("conclusion", "missing_field", "conclusion is required when status is completed or completed_at is given")
	}
	for field, v := range map[string]*string{"started_at": req.StartedAt, "completed_at": req.CompletedAt} {
		if v != nil {
			if _, err := time.Parse(time.RFC3339, *v); err != nil {
				errs.bad(field, "invalid", field+" must be an ISO 8601 timestamp: YYYY-MM-DDTHH:MM:SSZ")
			}
		}
	}
	if req.Output != nil {
		errs.output(req.Output, create)
	}
	errs.actions(req.Actions)
	return errs
}

// output checks a check run's output: title, summary, text, annotations and images.
func (e *checkRunErrors) output(o *checkRunOutput, create bool) {
	if create && (o.Title == nil || *o.Title == "") {
		e.bad("output.title", "missing_field", "")
	}
	if o.Summary == nil {
		e.bad("output.summary", "missing_field", "")
	}
	if o.Summary != nil && utf8.RuneCountInString(*o.Summary) > maxOutputChars {
		e.bad("output.summary", "custom", fmt.Sprintf("summary is too long (maximum is %d characters)", maxOutputChars))
	}
	if o.Text != nil && utf8.RuneCountInString(*o.Text) > maxOutputChars {
		e.bad("output.text", "custom", fmt.Sprintf("text is too long (maximum is %d characters)", maxOutputChars))
	}
	if len(o.Annotations) > maxAnnotations {
		e.bad("output.annotations", "custom", fmt.Sprintf("annotations exceed the maximum of %d per request", maxAnnotations))
	}
	for i, a := range o.Annotations {
		e.annotation(fmt.Sprintf("output.annotations[%d]", i), a)
	}
	for i, img := range o.Images {
		if img.Alt == nil || img.ImageURL == nil {
			e.bad(fmt.Sprintf("output.images[%d]", i), "missing_field", "alt and image_url are required")
		}
	}
}

// annotation checks one annotation, named f in the errors.
func (e *checkRunErrors) annotation(f string, a Annotation) {
	if a.Path == "" || a.StartLine == nil || a.EndLine == nil || a.AnnotationLevel == "" || a.Message == "" {
		e.bad(f, "missing_field", "path, start_line, end_line, annotation_level and message are required")
		return
	}
	if !slices.Contains(annotationLevels, a.AnnotationLevel) {
		e.bad(f+".annotation_level", "invalid", fmt.Sprintf("%s is not a member of %v", a.AnnotationLevel, annotationLevels))
	}
	if (a.StartColumn != nil || a.EndColumn != nil) && *a.StartLine != *a.EndLine {
		e.bad(f, "custom", "start_column and end_column are only supported on the same line")
	}
	if len(a.Message) > 64*1024 || (a.RawDetails != nil && len(*a.RawDetails) > 64*1024) {
		e.bad(f+".message", "custom", "message is too long (maximum is 64 KB)")
	}
	if a.Title != nil && utf8.RuneCountInString(*a.Title) > 255 {
		e.bad(f+".title", "custom", "title is too long (maximum is 255 characters)")
	}
}

// actions checks the requested-action buttons: how many, and each one's text lengths.
func (e *checkRunErrors) actions(actions []Action) {
	if len(actions) > maxActions {
		e.bad("actions", "custom", fmt.Sprintf("A maximum of %d actions are accepted", maxActions))
	}
	for i, a := range actions {
		f := fmt.Sprintf("actions[%d]", i)
		for _, lim := range []struct {
			name string
			v    string
			max  int
		}{{"label", a.Label, 20}, {"description", a.Description, 40}, {"identifier", a.Identifier, 20}} {
			switch n := utf8.RuneCountInString(lim.v); {
			case n == 0:
				e.bad(f+"."+lim.name, "missing_field", "")
			case n > lim.max:
				e.bad(f+"."+lim.name, "custom", fmt.Sprintf("%s is too long (maximum is %d characters)", lim.name, lim.max))
			}
		}
	}
}

func (s *Sim) createCheckRun(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req checkRunRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if errs := validateCheckRun(&req, true); len(errs) > 0 {
		writeValidation(w, docsCreateCheckRun, errs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := a.repo.commits[*req.HeadSHA]
	if c == nil {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+*req.HeadSHA, docsCreateCheckRun)
		return
	}
	key := suiteKey{repoID: a.repo.id, headSHA: c.sha}
	suite := s.st.suites[key]
	if suite == nil {
		suite = &checkSuite{id: s.st.id(), headSHA: c.sha, branch: branchOf(a.repo, c.sha)}
		s.st.suites[key] = suite
	}
	run := &checkRun{repoID: a.repo.id, CheckRun: CheckRun{ID: s.st.id(), SuiteID: suite.id, Name: *req.Name, HeadSHA: c.sha, Status: "queued"}}
	s.applyCheckRun(run, &req)
	s.st.checkRuns[run.ID] = run
	writeJSON(w, http.StatusCreated, s.st.checkRunJSON(a.repo, run))
}

func (s *Sim) updateCheckRun(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req checkRunRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.st.runIn(a.repo, r.PathValue("id"))
	if run == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsUpdateCheckRun)
		return
	}
	if errs := validateCheckRun(&req, false); len(errs) > 0 {
		writeValidation(w, docsUpdateCheckRun, errs...)
		return
	}
	if req.Name != nil && *req.Name != "" {
		run.Name = *req.Name
	}
	s.applyCheckRun(run, &req)
	writeJSON(w, http.StatusOK, s.st.checkRunJSON(a.repo, run))
}

// applyCheckRun merges a validated request into a run: annotations append, as GitHub documents.
func (s *Sim) applyCheckRun(run *checkRun, req *checkRunRequest) {
	now := s.now().UTC().Truncate(time.Second)
	if req.DetailsURL != nil {
		run.DetailsURL = *req.DetailsURL
	}
	if req.ExternalID != nil {
		run.ExternalID = *req.ExternalID
	}
	if req.Status != nil {
		run.Status = *req.Status
	}
	if req.StartedAt != nil {
		run.StartedAt, _ = time.Parse(time.RFC3339, *req.StartedAt)
	} else if run.StartedAt.IsZero() {
		run.StartedAt = now
	}
	if req.Conclusion != nil {
		run.Conclusion = *req.Conclusion
		run.Status = "completed"
	}
	if run.Status == "completed" {
		if req.CompletedAt != nil {
			run.CompletedAt, _ = time.Parse(time.RFC3339, *req.CompletedAt)
		} else if run.CompletedAt.IsZero() {
			run.CompletedAt = now
		}
	}
	if o := req.Output; o != nil {
		if o.Title != nil {
			run.Title = *o.Title
		}
		if o.Summary != nil {
			run.Summary = *o.Summary
		}
		if o.Text != nil {
			run.Text = *o.Text
		}
		run.Annotations = append(run.Annotations, o.Annotations...)
	}
	if req.Actions != nil {
		run.Actions = append([]Action(nil), req.Actions...)
	}
}

func (st *state) runIn(rp *repo, id string) *checkRun {
	return inRepo(st.checkRuns, rp, id, func(run *checkRun) int64 { return run.repoID })
}

// inRepo returns the item of byID whose id is the decimal id, or nil when there is none or
// it belongs to another repository than rp: GitHub answers 404 either way.
func inRepo[T any](byID map[int64]*T, rp *repo, id string, repoID func(*T) int64) *T {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil
	}
	item := byID[n]
	if item == nil || repoID(item) != rp.id {
		return nil
	}
	return item
}

func branchOf(rp *repo, sha string) string {
	for name, head := range rp.branches {
		if head == sha {
			return name
		}
	}
	return ""
}

func (s *Sim) getCheckRun(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.st.runIn(a.repo, r.PathValue("id"))
	if run == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/checks/runs#get-a-check-run")
		return
	}
	writeJSON(w, http.StatusOK, s.st.checkRunJSON(a.repo, run))
}

func (s *Sim) listCheckRunsForRef(w http.ResponseWriter, r *http.Request, a repoAccess) {
	q := r.URL.Query()
	s.mu.Lock()
	c := a.repo.resolve(r.PathValue("ref"))
	if c == nil {
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+r.PathValue("ref"), "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference")
		return
	}
	runs := s.st.runsFor(a.repo, c.sha)
	if q.Get("filter") != "all" {
		latest := map[string]bool{}
		var kept []*checkRun
		for i := len(runs) - 1; i >= 0; i-- { // newest first
			if !latest[runs[i].Name] {
				latest[runs[i].Name] = true
				kept = append(kept, runs[i])
			}
		}
		runs = kept
	} else {
		slices.Reverse(runs)
	}
	items := []any{}
	for _, run := range runs {
		if name := q.Get("check_name"); name != "" && run.Name != name {
			continue
		}
		if st := q.Get("status"); st != "" && run.Status != st {
			continue
		}
		items = append(items, s.st.checkRunJSON(a.repo, run))
	}
	s.mu.Unlock()
	total := len(items)
	page, ok := paginate(w, r, items)
	if ok {
		writeJSON(w, http.StatusOK, obj{"total_count": total, "check_runs": page})
	}
}

// runsFor lists a commit's check runs oldest first.
func (st *state) runsFor(rp *repo, sha string) []*checkRun {
	var out []*checkRun
	for _, run := range st.checkRuns {
		if run.repoID == rp.id && run.HeadSHA == sha {
			out = append(out, run)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return iso(t)
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (st *state) checkRunJSON(rp *repo, run *checkRun) obj {
	api := st.baseURL + "/repos/" + rp.fullName()
	url := fmt.Sprintf("%s/check-runs/%d", api, run.ID)
	var title, summary, text any
	if run.Title != "" {
		title = run.Title
	}
	if run.Summary != "" {
		summary = run.Summary
	}
	if run.Text != "" {
		text = run.Text
	}
	details := run.DetailsURL
	if details == "" {
		details = st.app.externalURL
	}
	return obj{
		"id":           run.ID,
		"name":         run.Name,
		"node_id":      nodeID("CheckRun", run.ID),
		"head_sha":     run.HeadSHA,
		"external_id":  run.ExternalID,
		"url":          url,
		"html_url":     fmt.Sprintf("%s/%s/runs/%d", st.baseURL, rp.fullName(), run.ID),
		"details_url":  strOrNil(details),
		"status":       run.Status,
		"conclusion":   strOrNil(run.Conclusion),
		"started_at":   timeOrNil(run.StartedAt),
		"completed_at": timeOrNil(run.CompletedAt),
		"output": obj{
			"title": title, "summary": summary, "text": text,
			"annotations_count": len(run.Annotations), "annotations_url": url + "/annotations",
		},
		"check_suite":   obj{"id": run.SuiteID},
		"app":           st.appJSON(),
		"pull_requests": st.pullRequestsMinimal(rp, run.HeadSHA),
	}
}

// pullRequestsMinimal lists the open pull requests whose head is sha in rp itself, as GitHub
// fills a check run's pull_requests: those from forks are never listed.
func (st *state) pullRequestsMinimal(rp *repo, sha string) []any {
	out := []any{}
	api := st.baseURL + "/repos/" + rp.fullName()
	side := func(ref, sha string) obj {
		return obj{"ref": ref, "sha": sha, "repo": obj{"id": rp.id, "url": api, "name": rp.name}}
	}
	for _, pr := range st.openPullsAt(rp, sha) {
		out = append(out, obj{
			"id": int64(pr.number) + rp.id*1000, "number": pr.number, "url": fmt.Sprintf("%s/pulls/%d", api, pr.number),
			"head": side(pr.head, pr.headSHA), "base": side(pr.base, rp.branches[pr.base]),
		})
	}
	return out
}

// CheckRuns returns a commit's check runs, oldest first.
func (s *Sim) CheckRuns(fullName, sha string) []CheckRun {
	return readRepo(s, fullName, func(rp *repo) (out []CheckRun) {
		for _, run := range s.st.runsFor(rp, sha) {
			cr := run.CheckRun
			cr.Annotations = append([]Annotation(nil), run.Annotations...)
			cr.Actions = append([]Action(nil), run.Actions...)
			out = append(out, cr)
		}
		return out
	})
}
