package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// SetProjectPreviews switches pull request previews on or off for a user's project and picks
// the agent they run on (nil: the project's own agent). The agent must be the same user's:
// the check is in the statement, so it cannot race with the agent's deletion.
func (s *Store) SetProjectPreviews(ctx context.Context, userID, projectID int64, enabled bool, agentID *int64) error {
	if agentID != nil {
		if _, err := s.AgentForUser(ctx, userID, *agentID); err != nil {
			return err
		}
	}
	return s.execOne(ctx, "project", projectID, `
		UPDATE projects SET previews_enabled = $3, preview_agent_id = $4, updated_at = now()
		WHERE id = $1 AND user_id = $2
		  AND ($4::bigint IS NULL OR EXISTS (SELECT 1 FROM agents a WHERE a.id = $4 AND a.user_id = $2))`,
		projectID, userID, enabled, agentID)
}

// PreviewListing is a preview as the dashboard lists it: read-only, without the GitHub ids.
type PreviewListing struct {
	PRNumber         int             `db:"pr_number"`
	State            string          `db:"state"`
	HeadSHA          string          `db:"head_sha"`
	HeadRef          string          `db:"head_ref"`
	HeadRepoFullName string          `db:"head_repo_full_name"`
	AuthorLogin      string          `db:"author_login"`
	ApprovedBy       string          `db:"approved_by"`
	URLs             json.RawMessage `db:"urls"`
	StopReason       string          `db:"stop_reason"`
	CreatedAt        time.Time       `db:"created_at"`
	UpdatedAt        time.Time       `db:"updated_at"`
	LastDeployedAt   sql.NullTime    `db:"last_deployed_at"`
}

// MaxPreviewListing bounds the previews listed for one project.
const MaxPreviewListing = 100

// PreviewListings lists a project's previews: the running and waiting ones first, then the
// stopped ones, newest first within each.
func (s *Store) PreviewListings(ctx context.Context, projectID int64) ([]PreviewListing, error) {
	return selectAs[PreviewListing](ctx, s, `
		SELECT pr_number, state, head_sha, head_ref, head_repo_full_name, author_login,
		       approved_by, urls, stop_reason, created_at, updated_at, last_deployed_at
		FROM previews WHERE project_id = $1
		ORDER BY state = 'stopped', updated_at DESC, pr_number DESC
		LIMIT $2`, projectID, MaxPreviewListing)
}
