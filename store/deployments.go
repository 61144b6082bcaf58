package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Deployment statuses. queued -> dispatched -> running -> one of the final ones.
const (
	DeploymentQueued     = "queued"
	DeploymentDispatched = "dispatched"
	DeploymentRunning    = "running"
	DeploymentSuccess    = "success"
	DeploymentFailure    = "failure"
	DeploymentTimedOut   = "timed_out"
	DeploymentRolledBack = "rolled_back"
	DeploymentCancelled  = "cancelled"
	DeploymentSuperseded = "superseded"
)

// Deployment triggers.
const (
	TriggerPush     = "push"
	TriggerRerun    = "rerun"
	TriggerRerunAll = "rerun_all"
	TriggerRedeploy = "redeploy"
	TriggerRollback = "rollback"
	TriggerManual   = "manual"
	// TriggerPreview deploys a pull request's head as its preview; TriggerPreviewStop tears
	// the preview down (closed, idle or too old).
	TriggerPreview     = "preview"
	TriggerPreviewStop = "preview_stop"
)

// EnvironmentProduction is the environment of every deployment of a deploy branch.
const EnvironmentProduction = "production"

// PreviewEnvironment is the environment of pull request number's preview.
func PreviewEnvironment(number int) string { return fmt.Sprintf("preview/pr-%d", number) }

// PreviewNumber is the pull request number of a preview environment, or 0 for production.
func PreviewNumber(environment string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(environment, "preview/pr-"))
	if err != nil || !strings.HasPrefix(environment, "preview/pr-") {
		return 0
	}
	return n
}

// Deployment is one attempt to run one SHA of one project.
type Deployment struct {
	ID                 int64           `db:"id"`
	ProjectID          int64           `db:"project_id"`
	AgentID            sql.NullInt64   `db:"agent_id"`
	SHA                string          `db:"sha"`
	Ref                string          `db:"ref"`
	Trigger            string          `db:"trigger"`
	Status             string          `db:"status"`
	DeliveryID         sql.NullInt64   `db:"delivery_id"`
	SupersededBy       sql.NullInt64   `db:"superseded_by"`
	CheckRunID         sql.NullInt64   `db:"check_run_id"`
	GitHubDeploymentID sql.NullInt64   `db:"github_deployment_id"`
	Error              string          `db:"error"`
	Services           json.RawMessage `db:"services"`
	CreatedAt          time.Time       `db:"created_at"`
	DispatchedAt       sql.NullTime    `db:"dispatched_at"`
	StartedAt          sql.NullTime    `db:"started_at"`
	FinishedAt         sql.NullTime    `db:"finished_at"`
	// Config is the agent's JobConfig this deployment ran with (no secrets).
	Config []byte `db:"config"`
	// ReportedStatus is the last status reported to GitHub; it lags Status when a report failed.
	ReportedStatus string `db:"reported_status"`
	// ReportAttempts counts the attempts at the final report (ClaimReports, CountReportAttempt).
	ReportAttempts int `db:"report_attempts"`
	// NextReportAt is when the final report may be tried again; NULL while the first is under way.
	NextReportAt sql.NullTime `db:"next_report_at"`
	// Environment is "production" or a pull request's "preview/pr-<n>".
	Environment string `db:"environment"`
}

// IsPreview says whether d deploys or stops a pull request's preview.
func (d Deployment) IsPreview() bool { return d.Environment != EnvironmentProduction }

// Finished reports whether the deployment reached a final status.
func (d Deployment) Finished() bool { return d.FinishedAt.Valid }

// NewDeployment is what queueing a deployment needs.
type NewDeployment struct {
	ProjectID  int64
	SHA        string
	Ref        string
	Trigger    string
	DeliveryID *int64
	// Environment is EnvironmentProduction when empty, or a PreviewEnvironment.
	Environment string
	// CreatedAt is when it was queued, on the clock of the code that times its other steps;
	// zero takes the database's clock.
	CreatedAt time.Time
}

// CreateDeployment queues a deployment.
func (s *Store) CreateDeployment(ctx context.Context, d NewDeployment) (Deployment, error) {
	return getAs[Deployment](ctx, s, "deployment of", d.SHA, `
		INSERT INTO deployments (project_id, sha, ref, trigger, delivery_id, created_at, environment)
		VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), $7) RETURNING *`,
		d.ProjectID, d.SHA, d.Ref, d.Trigger, d.DeliveryID, sql.NullTime{Time: d.CreatedAt, Valid: !d.CreatedAt.IsZero()},
		cmp.Or(d.Environment, EnvironmentProduction))
}

// DeploymentByID returns one deployment.
func (s *Store) DeploymentByID(ctx context.Context, id int64) (Deployment, error) {
	return getAs[Deployment](ctx, s, "deployment", id, `SELECT * FROM deployments WHERE id = $1`, id)
}

// DeploymentByCheckRunID finds the deployment a GitHub check run reports on.
func (s *Store) DeploymentByCheckRunID(ctx context.Context, checkRunID int64) (Deployment, error) {
	return getAs[Deployment](ctx, s, "deployment with check run", checkRunID, `
		SELECT * FROM deployments WHERE check_run_id = $1 ORDER BY id DESC LIMIT 1`, checkRunID)
}

// DeploymentsByProject lists a project's newest deployments first.
func (s *Store) DeploymentsByProject(ctx context.Context, projectID int64, limit int) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		SELECT * FROM deployments WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, projectID, limit)
}

// HasDeploymentOf says whether the project has a production deployment of sha, in any
// status: a preview of a pull request's commit says nothing of the deploy branch's pushes.
func (s *Store) HasDeploymentOf(ctx context.Context, projectID int64, sha string) (bool, error) {
	var ok bool
	err := s.q.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM deployments
		WHERE project_id = $1 AND sha = $2 AND environment = 'production')`, projectID, sha)
	return ok, mapErr(err)
}

// SetDeploymentGitHubIDs records the check run and GitHub deployment that report on d.
func (s *Store) SetDeploymentGitHubIDs(ctx context.Context, id int64, checkRunID, githubDeploymentID *int64) error {
	return s.execOne(ctx, "deployment", id, `
		UPDATE deployments SET check_run_id = COALESCE($2, check_run_id),
		       github_deployment_id = COALESCE($3, github_deployment_id)
		WHERE id = $1`, id, checkRunID, githubDeploymentID)
}

// SupersedeQueued marks every queued deployment of newer's project and environment older
// than newer as superseded by it, and returns them so their check runs can be completed. A
// preview never supersedes production, nor another pull request's preview; and a queued
// teardown of a preview is never superseded: its containers still run, and it holds a slot
// until the teardown has run (a deploy queued after it deploys afresh).
func (s *Store) SupersedeQueued(ctx context.Context, newer Deployment, at time.Time) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		UPDATE deployments SET status = 'superseded', superseded_by = $2, finished_at = $3,
		       error = 'superseded by a newer deployment'
		WHERE project_id = $1 AND environment = $4 AND status = 'queued' AND id < $2
		  AND trigger <> 'preview_stop'
		RETURNING *`, newer.ProjectID, newer.ID, at, newer.Environment)
}

// OldestQueued returns the next deployment to run in the project's environment.
func (s *Store) OldestQueued(ctx context.Context, projectID int64, environment string) (Deployment, error) {
	return getAs[Deployment](ctx, s, "queued deployment of project", projectID, `
		SELECT * FROM deployments WHERE project_id = $1 AND environment = $2 AND status = 'queued'
		ORDER BY id LIMIT 1`, projectID, environment)
}

// QueuedEnvironments lists the project's environments that have a queued deployment and no
// active one: production first, as a preview must never hold up the deploy branch on an
// agent they share, then the previews in the order they were queued.
func (s *Store) QueuedEnvironments(ctx context.Context, projectID int64) ([]string, error) {
	return selectAs[string](ctx, s, `
		SELECT q.environment FROM deployments q
		WHERE q.project_id = $1 AND q.status = 'queued' AND NOT EXISTS (
			SELECT 1 FROM deployments a WHERE a.project_id = q.project_id AND a.environment = q.environment
			  AND a.status IN ('dispatched', 'running'))
		GROUP BY q.environment ORDER BY (q.environment <> 'production'), min(q.id)`, projectID)
}

// MarkDispatched moves a queued deployment to dispatched on agentID. The database allows one
// dispatched or running deployment per project and environment: a second one fails with
// ErrConflict.
func (s *Store) MarkDispatched(ctx context.Context, id, agentID int64, at time.Time) error {
	return s.transition(ctx, id, `
		UPDATE deployments SET status = 'dispatched', agent_id = $2, dispatched_at = $3
		WHERE id = $1 AND status = 'queued'`, agentID, at)
}

// SetDeploymentConfig stores the JobConfig a deployment is about to run with.
func (s *Store) SetDeploymentConfig(ctx context.Context, id int64, config json.RawMessage) error {
	return s.execOne(ctx, "deployment", id, `UPDATE deployments SET config = $2 WHERE id = $1`, id, []byte(config))
}

// Requeue moves a dispatched deployment back to queued, when handing it to the agent failed.
func (s *Store) Requeue(ctx context.Context, id int64) error {
	return s.transition(ctx, id, `
		UPDATE deployments SET status = 'queued', agent_id = NULL, dispatched_at = NULL
		WHERE id = $1 AND status = 'dispatched'`)
}

// SetReportedStatus records that GitHub has been told about status.
func (s *Store) SetReportedStatus(ctx context.Context, id int64, status string) error {
	return s.execOne(ctx, "deployment", id, `UPDATE deployments SET reported_status = $2 WHERE id = $1`, id, status)
}

// ClaimReports takes up to limit finished deployments whose final status GitHub has not been
// told yet and whose retry is due (next_report_at at or before now), or whose first report,
// never scheduled, began before settled (its reporter died), the most overdue first. Each one
// claimed counts an attempt and is held until leaseUntil: another claim skips it meanwhile.
func (s *Store) ClaimReports(ctx context.Context, now, settled, leaseUntil time.Time, limit int) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		UPDATE deployments SET report_attempts = report_attempts + 1, next_report_at = $3
		WHERE id IN (
			SELECT id FROM deployments
			WHERE finished_at IS NOT NULL AND reported_status <> status
			  AND (next_report_at <= $1 OR (next_report_at IS NULL AND finished_at <= $2))
			ORDER BY COALESCE(next_report_at, finished_at), id
			LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING *`, now, settled, leaseUntil, limit)
}

// CountReportAttempt records one more attempt at the deployment's final report and returns
// how many there have been.
func (s *Store) CountReportAttempt(ctx context.Context, id int64) (int, error) {
	return getAs[int](ctx, s, "deployment", id, `
		UPDATE deployments SET report_attempts = report_attempts + 1 WHERE id = $1 RETURNING report_attempts`, id)
}

// ScheduleReport sets when the deployment's final report may be tried again.
func (s *Store) ScheduleReport(ctx context.Context, id int64, at time.Time) error {
	return s.execOne(ctx, "deployment", id, `UPDATE deployments SET next_report_at = $2 WHERE id = $1`, id, at)
}

// StaleQueued returns queued deployments created before cutoff whose agent (the project's,
// or for a preview the one it runs on) is offline or missing: they have waited for an agent
// long enough.
func (s *Store) StaleQueued(ctx context.Context, cutoff time.Time) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		SELECT d.* FROM deployments d
		JOIN projects p ON p.id = d.project_id
		LEFT JOIN previews pv ON pv.project_id = d.project_id AND d.environment = 'preview/pr-' || pv.pr_number
		LEFT JOIN agents a ON a.id = `+deploymentAgent+`
		WHERE d.status = 'queued' AND d.created_at < $1 AND (a.id IS NULL OR a.status = 'offline')
		ORDER BY d.id`, cutoff)
}

// deploymentAgent is the SQL for the agent a queued deployment d of project p goes to:
// production to the project's agent; a preview to the agent it already runs on (so its
// teardown reaches the same host), else the project's preview agent, else its agent. The
// query joins previews pv on d's environment.
const deploymentAgent = `CASE WHEN d.environment = 'production' THEN p.agent_id
	ELSE COALESCE(pv.agent_id, p.preview_agent_id, p.agent_id) END`

// ProjectsWaitingOnAgent returns the ids of the projects with deployments queued for the
// agent (deploymentAgent), the project whose deployment has waited longest first.
func (s *Store) ProjectsWaitingOnAgent(ctx context.Context, agentID int64) ([]int64, error) {
	return selectAs[int64](ctx, s, `
		SELECT p.id FROM projects p JOIN deployments d ON d.project_id = p.id AND d.status = 'queued'
		LEFT JOIN previews pv ON pv.project_id = d.project_id AND d.environment = 'preview/pr-' || pv.pr_number
		WHERE `+deploymentAgent+` = $1 GROUP BY p.id ORDER BY min(d.id)`, agentID)
}

// LostDeployments returns dispatched or running deployments whose agent is offline and was
// last heard from before cutoff, or that have no agent any more.
func (s *Store) LostDeployments(ctx context.Context, cutoff time.Time) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		SELECT d.* FROM deployments d
		LEFT JOIN agents a ON a.id = d.agent_id
		WHERE d.status IN ('dispatched', 'running')
		  AND (a.id IS NULL OR (a.status = 'offline' AND (a.last_heartbeat IS NULL OR a.last_heartbeat < $1)))
		ORDER BY d.id`, cutoff)
}

// OverdueDeployments returns dispatched or running deployments dispatched before cutoff.
func (s *Store) OverdueDeployments(ctx context.Context, cutoff time.Time) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		SELECT * FROM deployments
		WHERE status IN ('dispatched', 'running') AND dispatched_at < $1 ORDER BY id`, cutoff)
}

// ProjectsWithQueued returns ids of projects that have a queued deployment in an environment
// with no active one.
func (s *Store) ProjectsWithQueued(ctx context.Context) ([]int64, error) {
	return selectAs[int64](ctx, s, `
		SELECT DISTINCT q.project_id FROM deployments q
		WHERE q.status = 'queued' AND NOT EXISTS (
			SELECT 1 FROM deployments a WHERE a.project_id = q.project_id AND a.environment = q.environment
			  AND a.status IN ('dispatched', 'running'))
		ORDER BY 1`)
}

// MarkRunning records that agentID accepted the job; only the agent it was dispatched to can.
func (s *Store) MarkRunning(ctx context.Context, id, agentID int64, at time.Time) error {
	return s.transition(ctx, id, `
		UPDATE deployments SET status = 'running', started_at = COALESCE(started_at, $3)
		WHERE id = $1 AND agent_id = $2 AND status IN ('dispatched', 'running')`, agentID, at)
}

// FinishDeployment records a final status; a deployment already finished is left as it is
// and yields a not-found error naming its state.
func (s *Store) FinishDeployment(ctx context.Context, id int64, status, errText string, services json.RawMessage, at time.Time) error {
	if len(services) == 0 {
		services = json.RawMessage("[]")
	}
	return s.transition(ctx, id, `
		UPDATE deployments SET status = $2, error = $3, services = $4, finished_at = $5
		WHERE id = $1 AND status IN ('queued', 'dispatched', 'running')`, status, errText, []byte(services), at)
}

// transition runs a guarded status update; zero rows means the row is missing or not in
// a state that allows the move.
func (s *Store) transition(ctx context.Context, id int64, query string, args ...any) error {
	return s.execOne(ctx, "deployment in a state that allows this change", id, query, append([]any{id}, args...)...)
}

// LastSuccessful returns the newest successful deployment of the project's environment with
// an id below before (0 for any), the rollback target. A preview's stop counts as a fresh
// start: a preview deployed after it has no previous release.
func (s *Store) LastSuccessful(ctx context.Context, projectID int64, environment string, before int64) (Deployment, error) {
	return getAs[Deployment](ctx, s, "successful deployment of project", projectID, `
		SELECT * FROM deployments
		WHERE project_id = $1 AND environment = $2 AND status = 'success' AND ($3 = 0 OR id < $3)
		  AND id > COALESCE((SELECT max(id) FROM deployments WHERE project_id = $1 AND environment = $2
		      AND trigger = 'preview_stop' AND status = 'success' AND ($3 = 0 OR id < $3)), 0)
		  AND trigger <> 'preview_stop'
		ORDER BY id DESC LIMIT 1`, projectID, environment, before)
}

// PreviousGood returns the newest successful deployment of the project's production below
// id whose SHA differs from sha: what "Roll back" on deployment id goes back to. Previews
// have no roll back: a pull request's preview follows its head.
func (s *Store) PreviousGood(ctx context.Context, projectID, id int64, sha string) (Deployment, error) {
	return getAs[Deployment](ctx, s, "earlier good deployment of project", projectID, `
		SELECT * FROM deployments
		WHERE project_id = $1 AND environment = 'production' AND status = 'success' AND id < $2 AND sha <> $3
		ORDER BY id DESC LIMIT 1`, projectID, id, sha)
}

// ActiveDeployments returns the dispatched or running deployments, of every project, on agentID.
func (s *Store) ActiveDeployments(ctx context.Context, agentID int64) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		SELECT * FROM deployments WHERE agent_id = $1 AND status IN ('dispatched', 'running') ORDER BY id`, agentID)
}
