package api

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/store"
)

// The JSON shapes of docs/api.md. Timestamps are RFC 3339 UTC; nullable ones are pointers.

type userView struct {
	ID        int64  `json:"id"`
	Login     string `json:"login"`
	Name      string `json:"name"`
	AvatarURL string `json:"avatar_url"`
}

type installationView struct {
	ID          int64  `json:"id"`
	Account     string `json:"account"`
	AccountType string `json:"account_type"`
}

type repositoryView struct {
	ID            int64  `json:"id"`
	FullName      string `json:"full_name"`
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
	// Push says whether the user may push to it, which linking it to a project takes.
	Push bool `json:"push"`
}

type agentRef struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

type projectView struct {
	ID             int64     `json:"id"`
	PublicID       string    `json:"public_id"`
	Name           string    `json:"name"`
	RepoID         int64     `json:"repo_id"`
	RepoFullName   string    `json:"repo_full_name"`
	DeployBranch   string    `json:"deploy_branch"`
	RootDirectory  string    `json:"root_directory"` // "" is the repository root
	ComposeProject string    `json:"compose_project"`
	InstallationID int64     `json:"installation_id"` // GitHub's installation id, as in GET /api/installations
	Agent          *agentRef `json:"agent"`
	// PreviewsEnabled is the pull request previews switch; PreviewAgent the agent previews run
	// on (null: the project's own agent).
	PreviewsEnabled bool      `json:"previews_enabled"`
	PreviewAgent    *agentRef `json:"preview_agent"`
	CreatedAt       string    `json:"created_at"`
	UpdatedAt       string    `json:"updated_at"`
}

type secretView struct {
	Environment       string `json:"environment"`
	ShareWithPreviews bool   `json:"share_with_previews"`
	Scope             string `json:"scope"`
	Key               string `json:"key"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
}

type deploymentView struct {
	ID          int64   `json:"id"`
	SHA         string  `json:"sha"`
	Ref         string  `json:"ref"`
	Trigger     string  `json:"trigger"`
	Status      string  `json:"status"`
	Error       string  `json:"error"`
	CreatedAt   string  `json:"created_at"`
	StartedAt   *string `json:"started_at"`
	FinishedAt  *string `json:"finished_at"`
	CheckRunURL *string `json:"check_run_url"`
}

type agentView struct {
	ID             int64   `json:"id"`
	Name           string  `json:"name"`
	Status         string  `json:"status"`
	LastHeartbeat  *string `json:"last_heartbeat"`
	Version        string  `json:"version"`
	Hostname       string  `json:"hostname"`
	DockerVersion  string  `json:"docker_version"`
	ComposeVersion string  `json:"compose_version"`
	CreatedAt      string  `json:"created_at"`
	// WaitingForFirstConnection is true until the agent has traded its bootstrap token
	// (from creation or the last rotation) for its long-lived one.
	WaitingForFirstConnection bool `json:"waiting_for_first_connection"`
	// BootstrapExpiresAt is when that bootstrap token stops working, while waiting.
	BootstrapExpiresAt *string `json:"bootstrap_expires_at"`
	// AutoUpdate, LatestVersion and VersionStatus: self-update (docs/agents.md).
	AutoUpdate    bool   `json:"auto_update"`
	LatestVersion string `json:"latest_version"`
	VersionStatus string `json:"version_status"`
}

// agentEventView is one line of an agent's history (its audit entries).
type agentEventView struct {
	ID        int64           `json:"id"`
	Action    string          `json:"action"`
	Actor     string          `json:"actor"`
	Detail    json.RawMessage `json:"detail"`
	CreatedAt string          `json:"created_at"`
}

func toAgentEventView(e store.AuditEntry) agentEventView {
	return agentEventView{ID: e.ID, Action: e.Action, Actor: e.Actor, Detail: e.Detail, CreatedAt: timestamp(e.CreatedAt)}
}

// agentWithToken is the only answer that carries an agent token: creation and rotation.
type agentWithToken struct {
	Agent     agentView `json:"agent"`
	Token     string    `json:"token"`
	CloudInit string    `json:"cloud_init"`
	// InstallCommand is the one line that installs the agent on a server by hand.
	InstallCommand string `json:"install_command"`
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullTimestamp(t sql.NullTime) *string {
	if !t.Valid {
		return nil
	}
	s := timestamp(t.Time)
	return &s
}

func nullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: true} }

func jsonObject(m map[string]any) (json.RawMessage, error) {
	if m == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode audit detail: %w", err)
	}
	return b, nil
}

// list answers 200 with every item as its view: a JSON array, [] when there are none, which
// the SPA maps over without a nil check.
func list[T, V any](c *gin.Context, items []T, view func(T) V) error {
	out := make([]V, 0, len(items))
	for _, it := range items {
		out = append(out, view(it))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (a *API) toAgentView(ag store.Agent) agentView {
	latest, status := a.versionStatus(ag)
	v := agentView{
		ID: ag.ID, Name: ag.Name, Status: ag.Status, LastHeartbeat: nullTimestamp(ag.LastHeartbeat),
		Version: ag.Version, Hostname: ag.Hostname, DockerVersion: ag.DockerVersion,
		ComposeVersion: ag.ComposeVersion, CreatedAt: timestamp(ag.CreatedAt),
		AutoUpdate: ag.AutoUpdate, LatestVersion: latest, VersionStatus: status,
		WaitingForFirstConnection: ag.WaitingForFirstConnection(),
	}
	if v.WaitingForFirstConnection {
		v.BootstrapExpiresAt = nullTimestamp(ag.BootstrapExpiresAt)
	}
	return v
}

func toSecretView(m store.SecretMeta) secretView {
	return secretView{Environment: m.Environment, ShareWithPreviews: m.ShareWithPreviews, Scope: m.Scope, Key: m.Key, CreatedAt: timestamp(m.CreatedAt), UpdatedAt: timestamp(m.UpdatedAt)}
}

func (a *API) toDeploymentView(p store.Project, d store.Deployment) deploymentView {
	v := deploymentView{
		ID: d.ID, SHA: d.SHA, Ref: d.Ref, Trigger: d.Trigger, Status: d.Status, Error: d.Error,
		CreatedAt: timestamp(d.CreatedAt), StartedAt: nullTimestamp(d.StartedAt), FinishedAt: nullTimestamp(d.FinishedAt),
	}
	if d.CheckRunID.Valid {
		u := fmt.Sprintf("%s/%s/runs/%d", a.githubURL, p.RepoFullName, d.CheckRunID.Int64)
		v.CheckRunURL = &u
	}
	return v
}
