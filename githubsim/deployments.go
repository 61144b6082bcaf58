package githubsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"
)

const (
	docsCreateDeployment       = "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
	docsCreateDeploymentStatus = "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"
)

// Deployment is one deployment as the Sim holds it.
type Deployment struct {
	ID                    int64
	Ref                   string
	SHA                   string
	Task                  string
	Environment           string
	Description           string
	Payload               any
	RequiredContexts      []string // nil when the request omitted the field
	TransientEnvironment  bool
	ProductionEnvironment bool
	CreatedAt             time.Time
	Statuses              []DeploymentStatus
}

// DeploymentStatus is one status of a deployment.
type DeploymentStatus struct {
	ID             int64
	State          string
	Description    string
	Environment    string
	TargetURL      string
	LogURL         string
	EnvironmentURL string
	CreatedAt      time.Time
}

type deployment struct {
	Deployment
	repoID int64
}

type deploymentRequest struct {
	Ref                   *string          `json:"ref"`
	Task                  *string          `json:"task"`
	AutoMerge             *bool            `json:"auto_merge"`
	RequiredContexts      *[]string        `json:"required_contexts"`
	Payload               *json.RawMessage `json:"payload"`
	Environment           *string          `json:"environment"`
	Description           *string          `json:"description"`
	TransientEnvironment  *bool            `json:"transient_environment"`
	ProductionEnvironment *bool            `json:"production_environment"`
}

// contextState is one entry of a 409's "contexts" list.
type contextState struct {
	Context string `json:"context"`
	State   string `json:"state"`
}

func (s *Sim) createDeployment(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req deploymentRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Ref == nil || *req.Ref == "" {
		writeValidation(w, docsCreateDeployment, fieldError{Resource: "Deployment", Field: "ref", Code: "missing_field"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := a.repo.resolve(*req.Ref)
	if c == nil {
		writeError(w, http.StatusUnprocessableEntity, "No ref found for: "+*req.Ref, docsCreateDeployment)
		return
	}
	if failing := s.st.failingContexts(a.repo, c.sha, req.RequiredContexts); len(failing) > 0 {
		writeJSON(w, http.StatusConflict, obj{
			"message": fmt.Sprintf("Conflict: Commit status checks failed for %s.", *req.Ref),
			"errors": []any{obj{
				"contexts": failing, "resource": "Deployment", "field": "required_contexts", "code": "invalid",
			}},
			"documentation_url": docsCreateDeployment,
			"status":            "409",
		})
		return
	}
	d := &deployment{repoID: a.repo.id, Deployment: Deployment{
		ID: s.st.id(), Ref: *req.Ref, SHA: c.sha, Task: "deploy", Environment: "production",
		Payload: obj{}, CreatedAt: s.now().UTC().Truncate(time.Second),
	}}
	req.applyTo(&d.Deployment)
	s.st.deployments[d.ID] = d
	writeJSON(w, http.StatusCreated, s.st.deploymentJSON(a.repo, d))
}

// failingContexts lists the required contexts of a commit that are not successful. required
// nil means the request omitted the field: "If you omit this parameter, GitHub verifies all
// unique contexts ... pass an empty array" to bypass.
func (st *state) failingContexts(rp *repo, sha string, required *[]string) []contextState {
	names := st.contextsOf(rp, sha)
	if required != nil {
		names = *required
	}
	var failing []contextState
	states := st.contextStates(rp, sha)
	for _, name := range names {
		if st := states[name]; st != "success" {
			if st == "" {
				st = "missing"
			}
			failing = append(failing, contextState{Context: name, State: st})
		}
	}
	return failing
}

// applyTo sets what the request gives of a new deployment; the rest keeps GitHub's defaults.
func (req *deploymentRequest) applyTo(d *Deployment) {
	if req.RequiredContexts != nil {
		d.RequiredContexts = append([]string{}, *req.RequiredContexts...)
	}
	if req.Task != nil {
		d.Task = *req.Task
	}
	if req.Environment != nil {
		d.Environment = *req.Environment
	}
	if req.Description != nil {
		d.Description = *req.Description
	}
	if req.TransientEnvironment != nil {
		d.TransientEnvironment = *req.TransientEnvironment
	}
	d.ProductionEnvironment = d.Environment == "production"
	if req.ProductionEnvironment != nil {
		d.ProductionEnvironment = *req.ProductionEnvironment
	}
	if req.Payload != nil {
		var p any
		if err := json.Unmarshal(*req.Payload, &p); err == nil {
			// A JSON-encoded string payload is stored decoded, as GitHub does.
			if str, ok := p.(string); ok {
				var inner any
				if str != "" && json.Unmarshal([]byte(str), &inner) == nil {
					p = inner
				}
			}
			d.Payload = p
		}
	}
}

// contextsOf lists the unique status contexts and check-run names of a commit.
func (st *state) contextsOf(rp *repo, sha string) []string {
	seen := map[string]bool{}
	var out []string
	for _, cs := range st.statusesFor(rp, sha) {
		if !seen[cs.Context] {
			seen[cs.Context] = true
			out = append(out, cs.Context)
		}
	}
	for _, run := range st.runsFor(rp, sha) {
		if !seen[run.Name] {
			seen[run.Name] = true
			out = append(out, run.Name)
		}
	}
	return out
}

// contextStates gives each context's latest state; a check run counts as success when it completed
// with success, neutral or skipped.
func (st *state) contextStates(rp *repo, sha string) map[string]string {
	out := map[string]string{}
	for _, cs := range st.statusesFor(rp, sha) {
		out[cs.Context] = cs.State
	}
	for _, run := range st.runsFor(rp, sha) {
		switch {
		case run.Status != "completed":
			out[run.Name] = "pending"
		case run.Conclusion == "success" || run.Conclusion == "neutral" || run.Conclusion == "skipped":
			out[run.Name] = "success"
		default:
			out[run.Name] = "failure"
		}
	}
	return out
}

func (st *state) deploymentJSON(rp *repo, d *deployment) obj {
	api := st.baseURL + "/repos/" + rp.fullName()
	url := fmt.Sprintf("%s/deployments/%d", api, d.ID)
	return obj{
		"url":                      url,
		"id":                       d.ID,
		"node_id":                  nodeID("Deployment", d.ID),
		"sha":                      d.SHA,
		"ref":                      d.Ref,
		"task":                     d.Task,
		"payload":                  d.Payload,
		"original_environment":     d.Environment,
		"environment":              d.Environment,
		"description":              d.Description,
		"creator":                  st.botUser(),
		"created_at":               iso(d.CreatedAt),
		"updated_at":               iso(d.CreatedAt),
		"statuses_url":             url + "/statuses",
		"repository_url":           api,
		"transient_environment":    d.TransientEnvironment,
		"production_environment":   d.ProductionEnvironment,
		"performed_via_github_app": st.appJSON(),
	}
}

var deploymentStates = []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}

type deploymentStatusRequest struct {
	State          *string `json:"state"`
	TargetURL      *string `json:"target_url"`
	LogURL         *string `json:"log_url"`
	Description    *string `json:"description"`
	Environment    *string `json:"environment"`
	EnvironmentURL *string `json:"environment_url"`
	AutoInactive   *bool   `json:"auto_inactive"`
}

func (st *state) deploymentIn(rp *repo, id string) *deployment {
	return inRepo(st.deployments, rp, id, func(d *deployment) int64 { return d.repoID })
}

func (s *Sim) createDeploymentStatus(w http.ResponseWriter, r *http.Request, a repoAccess) {
	var req deploymentStatusRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.st.deploymentIn(a.repo, r.PathValue("id"))
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsCreateDeploymentStatus)
		return
	}
	if errs := validateStateAndDescription("DeploymentStatus", req.State, deploymentStates, req.Description); len(errs) > 0 {
		writeValidation(w, docsCreateDeploymentStatus, errs...)
		return
	}
	ds := DeploymentStatus{ID: s.st.id(), State: *req.State, Environment: d.Environment, CreatedAt: s.now().UTC().Truncate(time.Second)}
	if req.Description != nil {
		ds.Description = *req.Description
	}
	if req.TargetURL != nil {
		ds.TargetURL = *req.TargetURL
	}
	if req.LogURL != nil {
		// "Setting log_url will automatically set target_url to the same value."
		ds.LogURL, ds.TargetURL = *req.LogURL, *req.LogURL
	}
	if req.EnvironmentURL != nil {
		ds.EnvironmentURL = *req.EnvironmentURL
	}
	if req.Environment != nil && *req.Environment != "" {
		ds.Environment, d.Environment = *req.Environment, *req.Environment
	}
	d.Statuses = append(d.Statuses, ds)
	if ds.State == "success" && (req.AutoInactive == nil || *req.AutoInactive) {
		s.st.inactivateOthers(d)
	}
	writeJSON(w, http.StatusCreated, s.st.deploymentStatusJSON(a.repo, d, ds))
}

// inactivateOthers is auto_inactive: earlier non-transient, non-production deployments to the same
// environment whose latest status is success get an inactive status.
func (st *state) inactivateOthers(d *deployment) {
	for _, other := range st.deployments {
		if other == d || other.repoID != d.repoID || other.Environment != d.Environment ||
			other.TransientEnvironment || other.ProductionEnvironment || len(other.Statuses) == 0 ||
			other.Statuses[len(other.Statuses)-1].State != "success" {
			continue
		}
		other.Statuses = append(other.Statuses, DeploymentStatus{
			ID: st.id(), State: "inactive", Environment: other.Environment, CreatedAt: d.Statuses[len(d.Statuses)-1].CreatedAt,
		})
	}
}

func (s *Sim) listDeploymentStatuses(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	d := s.st.deploymentIn(a.repo, r.PathValue("id"))
	items := []any{}
	if d != nil {
		for i := len(d.Statuses) - 1; i >= 0; i-- {
			items = append(items, s.st.deploymentStatusJSON(a.repo, d, d.Statuses[i]))
		}
	}
	s.mu.Unlock()
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/deployments/statuses#list-deployment-statuses")
		return
	}
	writePage(w, r, items)
}

func (st *state) deploymentStatusJSON(rp *repo, d *deployment, ds DeploymentStatus) obj {
	api := st.baseURL + "/repos/" + rp.fullName()
	durl := fmt.Sprintf("%s/deployments/%d", api, d.ID)
	return obj{
		"url":                      fmt.Sprintf("%s/statuses/%d", durl, ds.ID),
		"id":                       ds.ID,
		"node_id":                  nodeID("DeploymentStatus", ds.ID),
		"state":                    ds.State,
		"creator":                  st.botUser(),
		"description":              ds.Description,
		"environment":              ds.Environment,
		"target_url":               ds.TargetURL,
		"log_url":                  ds.LogURL,
		"environment_url":          ds.EnvironmentURL,
		"created_at":               iso(ds.CreatedAt),
		"updated_at":               iso(ds.CreatedAt),
		"deployment_url":           durl,
		"repository_url":           api,
		"performed_via_github_app": st.appJSON(),
	}
}

// Deployments returns a repository's deployments, oldest first, each with its statuses.
func (s *Sim) Deployments(fullName string) []Deployment {
	return readRepo(s, fullName, func(rp *repo) (out []Deployment) {
		for _, d := range s.st.deployments {
			if d.repoID == rp.id {
				cp := d.Deployment
				cp.Statuses = append([]DeploymentStatus(nil), d.Statuses...)
				out = append(out, cp)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out
	})
}

// DeploymentStatuses returns one deployment's statuses, oldest first.
func (s *Sim) DeploymentStatuses(fullName string, id int64) []DeploymentStatus {
	for _, d := range s.Deployments(fullName) {
		if d.ID == id {
			return d.Statuses
		}
	}
	return nil
}

// listDeployments is GET /repos/{owner}/{repo}/deployments, newest first, filtered by the sha,
// ref, task and environment query parameters GitHub documents.
func (s *Sim) listDeployments(w http.ResponseWriter, r *http.Request, a repoAccess) {
	q := r.URL.Query()
	s.mu.Lock()
	var ds []*deployment
	for _, d := range s.st.deployments {
		if d.repoID != a.repo.id ||
			(q.Get("sha") != "" && d.SHA != q.Get("sha")) ||
			(q.Get("ref") != "" && d.Ref != q.Get("ref")) ||
			(q.Get("task") != "" && d.Task != q.Get("task")) ||
			(q.Get("environment") != "" && d.Environment != q.Get("environment")) {
			continue
		}
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].ID > ds[j].ID })
	items := []any{}
	for _, d := range ds {
		items = append(items, s.st.deploymentJSON(a.repo, d))
	}
	s.mu.Unlock()
	writePage(w, r, items)
}
