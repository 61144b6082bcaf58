package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Preview states (the previews table, migrations/sql/00011_previews.sql).
const (
	PreviewAwaitingApproval = "awaiting_approval"
	PreviewQueued           = "queued"
	PreviewDeploying        = "deploying"
	PreviewLive             = "live"
	PreviewFailed           = "failed"
	PreviewStopping         = "stopping"
	PreviewStopped          = "stopped"
)

// Preview is a pull request's preview on one project: its lifecycle, while each deploy or
// teardown of it is a Deployment of environment PreviewEnvironment(PRNumber).
type Preview struct {
	ID                 int64           `db:"id"`
	ProjectID          int64           `db:"project_id"`
	PRNumber           int             `db:"pr_number"`
	HeadSHA            string          `db:"head_sha"`
	HeadRef            string          `db:"head_ref"`
	HeadRepoFullName   string          `db:"head_repo_full_name"`
	AuthorLogin        string          `db:"author_login"`
	State              string          `db:"state"`
	ApprovedSHA        string          `db:"approved_sha"`
	ApprovedBy         string          `db:"approved_by"`
	AgentID            sql.NullInt64   `db:"agent_id"`
	CommentID          sql.NullInt64   `db:"comment_id"`
	GitHubDeploymentID sql.NullInt64   `db:"github_deployment_id"`
	URLs               json.RawMessage `db:"urls"`
	StopReason         string          `db:"stop_reason"`
	CreatedAt          time.Time       `db:"created_at"`
	UpdatedAt          time.Time       `db:"updated_at"`
	LastDeployedAt     sql.NullTime    `db:"last_deployed_at"`
	// StopAt is when the preview is stopped for being idle; NULL until it is deployed.
	StopAt sql.NullTime `db:"stop_at"`
}

// Environment is the deployments' environment of the preview.
func (p Preview) Environment() string { return PreviewEnvironment(p.PRNumber) }

// URLMap decodes URLs: service name to URL.
func (p Preview) URLMap() map[string]string {
	out := map[string]string{}
	_ = json.Unmarshal(p.URLs, &out) // the column is a JSON object by its CHECK
	return out
}

// PreviewHead is what a pull_request event says of a pull request's head.
type PreviewHead struct {
	ProjectID        int64
	PRNumber         int
	HeadSHA          string
	HeadRef          string
	HeadRepoFullName string
	AuthorLogin      string
}

// RecordPreviewHead creates the pull request's preview, in state, or records its new head on
// the one there is, keeping its state.
func (s *Store) RecordPreviewHead(ctx context.Context, h PreviewHead, state string) (Preview, error) {
	return getAs[Preview](ctx, s, "preview of pull request", h.PRNumber, `
		INSERT INTO previews (project_id, pr_number, head_sha, head_ref, head_repo_full_name, author_login, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (project_id, pr_number) DO UPDATE SET head_sha = EXCLUDED.head_sha,
		       head_ref = EXCLUDED.head_ref, head_repo_full_name = EXCLUDED.head_repo_full_name,
		       author_login = EXCLUDED.author_login, updated_at = now()
		RETURNING *`, h.ProjectID, h.PRNumber, h.HeadSHA, h.HeadRef, h.HeadRepoFullName, h.AuthorLogin, state)
}

// PreviewByNumber returns the preview of the project's pull request number.
func (s *Store) PreviewByNumber(ctx context.Context, projectID int64, number int) (Preview, error) {
	return getAs[Preview](ctx, s, "preview of pull request", number, `
		SELECT * FROM previews WHERE project_id = $1 AND pr_number = $2`, projectID, number)
}

// SetPreviewState moves the preview to state; reason is kept as its stop_reason (or cleared).
func (s *Store) SetPreviewState(ctx context.Context, id int64, state, reason string) error {
	return s.execOne(ctx, "preview", id, `
		UPDATE previews SET state = $2, stop_reason = $3, updated_at = now() WHERE id = $1`, id, state, reason)
}

// ApprovePreview records that login, who has write access, approved deploying sha.
func (s *Store) ApprovePreview(ctx context.Context, id int64, sha, login string) error {
	return s.execOne(ctx, "preview", id, `
		UPDATE previews SET approved_sha = $2, approved_by = $3, updated_at = now() WHERE id = $1`, id, sha, login)
}

// SetPreviewDeployed records a deploy of the preview starting at at: its URLs and when it is
// stopped for being idle.
func (s *Store) SetPreviewDeployed(ctx context.Context, id int64, urls map[string]string, at, stopAt time.Time) error {
	raw, err := json.Marshal(urls)
	if err != nil {
		return fmt.Errorf("encode the URLs of preview %d: %w", id, err)
	}
	return s.execOne(ctx, "preview", id, `
		UPDATE previews SET urls = $2, last_deployed_at = $3, stop_at = $4, updated_at = now() WHERE id = $1`,
		id, raw, at, stopAt)
}

// SetPreviewGitHub records the preview's PR comment and current GitHub deployment (nil keeps one).
func (s *Store) SetPreviewGitHub(ctx context.Context, id int64, commentID, githubDeploymentID *int64) error {
	return s.execOne(ctx, "preview", id, `
		UPDATE previews SET comment_id = COALESCE($2, comment_id),
		       github_deployment_id = COALESCE($3, github_deployment_id) WHERE id = $1`, id, commentID, githubDeploymentID)
}

// ClaimPreviewSlot lets the preview deploy on agentID when it already holds one of the
// project's limit slots there, or one is free: a preview holds a slot while deploying, live,
// stopping, or failed after a deploy of it succeeded since its last teardown (its containers
// may still run). It moves the preview to deploying on
// the agent and says true; false leaves it queued. The project's row is locked meanwhile,
// so two claims never both take the last slot.
func (s *Store) ClaimPreviewSlot(ctx context.Context, previewID, agentID int64, limit int) (bool, error) {
	claimed := false
	err := s.InTx(ctx, func(tx *Store) error {
		var p Preview
		if err := tx.get(ctx, &p, "preview", previewID, `SELECT * FROM previews WHERE id = $1`, previewID); err != nil {
			return err
		}
		if _, err := tx.q.ExecContext(ctx, `SELECT id FROM projects WHERE id = $1 FOR UPDATE`, p.ProjectID); err != nil {
			return fmt.Errorf("lock project %d: %w", p.ProjectID, err)
		}
		var held int
		if err := tx.q.GetContext(ctx, &held, `
			SELECT count(*) FROM previews v WHERE project_id = $1 AND agent_id = $2 AND id <> $3
			  AND (state IN ('deploying', 'live', 'stopping') OR (state = 'failed' AND `+ranSinceStop+`))`,
			p.ProjectID, agentID, previewID); err != nil {
			return fmt.Errorf("count the previews on agent %d: %w", agentID, err)
		}
		holds := p.AgentID.Valid && p.AgentID.Int64 == agentID && slotHolding(p.State)
		if !holds && held >= limit {
			return tx.execOne(ctx, "preview", previewID, `
				UPDATE previews SET state = 'queued', updated_at = now() WHERE id = $1`, previewID)
		}
		claimed = true
		return tx.execOne(ctx, "preview", previewID, `
			UPDATE previews SET state = 'deploying', agent_id = $2, stop_reason = '', updated_at = now() WHERE id = $1`,
			previewID, agentID)
	})
	return claimed, err
}

// ranSinceStop is an SQL condition on preview v: a deploy of it succeeded since its last
// teardown, so a failed preview may still have containers running. One whose deploys all
// failed since (its first, say) holds no slot.
const ranSinceStop = `EXISTS (
	SELECT 1 FROM deployments d WHERE d.project_id = v.project_id AND d.environment = 'preview/pr-' || v.pr_number
	  AND d.trigger <> 'preview_stop' AND d.status = 'success' AND d.id > COALESCE((
		SELECT max(s.id) FROM deployments s WHERE s.project_id = v.project_id AND s.environment = d.environment
		  AND s.trigger = 'preview_stop' AND s.status = 'success'), 0))`

func slotHolding(state string) bool {
	switch state {
	case PreviewDeploying, PreviewLive, PreviewFailed, PreviewStopping:
		return true
	}
	return false
}

// PreviewsOnAgent returns the previews on the agent, of every project, that may hold its host
// names (deploying, live, failed or stopping), but the preview except.
func (s *Store) PreviewsOnAgent(ctx context.Context, agentID, except int64) ([]Preview, error) {
	return selectAs[Preview](ctx, s, `
		SELECT * FROM previews WHERE agent_id = $1 AND id <> $2
		  AND state IN ('deploying', 'live', 'failed', 'stopping') ORDER BY id`, agentID, except)
}

// PreviewsToStop returns the previews, of every project, that are live or failed and whose
// stop_at is before now: idle for longer than their stop_after.
func (s *Store) PreviewsToStop(ctx context.Context, now time.Time) ([]Preview, error) {
	return selectAs[Preview](ctx, s, `
		SELECT * FROM previews WHERE state IN ('live', 'failed') AND stop_at < $1 ORDER BY id`, now)
}

// CancelQueued finishes the queued deploys of the project's environment as cancelled, with
// reason, and returns them (a pull request closed before its preview ran). A queued teardown
// is never cancelled: the preview's containers run until it has.
func (s *Store) CancelQueued(ctx context.Context, projectID int64, environment, reason string, at time.Time) ([]Deployment, error) {
	return selectAs[Deployment](ctx, s, `
		UPDATE deployments SET status = 'cancelled', error = $3, finished_at = $4
		WHERE project_id = $1 AND environment = $2 AND status = 'queued' AND trigger <> 'preview_stop'
		RETURNING *`, projectID, environment, reason, at)
}

// TeardownPending says whether a teardown of the project's environment is queued or on its
// agent.
func (s *Store) TeardownPending(ctx context.Context, projectID int64, environment string) (bool, error) {
	var pending bool
	err := s.q.GetContext(ctx, &pending, `
		SELECT EXISTS (SELECT 1 FROM deployments WHERE project_id = $1 AND environment = $2
		  AND trigger = 'preview_stop' AND status IN ('queued', 'dispatched', 'running'))`, projectID, environment)
	if err != nil {
		return false, fmt.Errorf("look for a pending teardown of %s: %w", environment, err)
	}
	return pending, nil
}

// TeardownFailed records that the preview's teardown failed with reason and is tried again
// at retryAt: the sweep's PreviewsToStop returns it once that time has passed. It returns
// how many teardowns of the preview have failed since its last successful one, this one
// included, from which the caller spaces the retries.
func (s *Store) TeardownFailed(ctx context.Context, p Preview, reason string, retryAt func(failures int) time.Time) (int, error) {
	var failures int
	err := s.q.GetContext(ctx, &failures, `
		SELECT count(*) FROM deployments
		WHERE project_id = $1 AND environment = $2 AND trigger = 'preview_stop' AND status <> 'success'
		  AND finished_at IS NOT NULL
		  AND id > COALESCE((SELECT max(id) FROM deployments WHERE project_id = $1 AND environment = $2
		      AND trigger = 'preview_stop' AND status = 'success'), 0)`, p.ProjectID, p.Environment())
	if err != nil {
		return 0, fmt.Errorf("count the failed teardowns of %s: %w", p.Environment(), err)
	}
	return failures, s.execOne(ctx, "preview", p.ID, `
		UPDATE previews SET state = 'failed', stop_reason = $2, stop_at = $3, updated_at = now() WHERE id = $1`,
		p.ID, reason, retryAt(max(failures, 1)))
}
