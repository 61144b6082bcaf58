package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"time"
)

// Project links a repository's deploy branch to an agent.
type Project struct {
	ID             int64         `db:"id"`
	PublicID       string        `db:"public_id"`
	UserID         int64         `db:"user_id"`
	InstallationID int64         `db:"installation_id"`
	Name           string        `db:"name"`
	RepoID         int64         `db:"repo_id"`
	RepoFullName   string        `db:"repo_full_name"`
	DeployBranch   string        `db:"deploy_branch"`
	AgentID        sql.NullInt64 `db:"agent_id"`
	ComposeProject string        `db:"compose_project"`
	// RootDirectory is the folder holding the project's stagely.yaml and compose file, relative
	// to the repository root without a leading or trailing slash; "" is the repository root.
	RootDirectory string    `db:"root_directory"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
	// PreviewsEnabled is the dashboard's switch for pull request previews (docs/previews.md).
	PreviewsEnabled bool `db:"previews_enabled"`
	// PreviewAgentID is the agent previews run on; NULL means the project's own agent.
	PreviewAgentID sql.NullInt64 `db:"preview_agent_id"`
}

// NewProject is what creating a project needs.
type NewProject struct {
	UserID         int64
	InstallationID int64
	Name           string
	RepoID         int64
	RepoFullName   string
	DeployBranch   string
	AgentID        *int64
	// RootDirectory is stored as given: callers clean it (stagelyyaml.CleanRootDirectory).
	RootDirectory string
}

// CreateProject inserts a project with a fresh public id and a stable compose project name.
func (s *Store) CreateProject(ctx context.Context, p NewProject) (Project, error) {
	publicID, err := newPublicID()
	if err != nil {
		return Project{}, err
	}
	// compose_project is derived from the public id, never from the name, so renaming
	// nothing ever moves a project's containers or working directory.
	return getAs[Project](ctx, s, "project", p.Name, `
		INSERT INTO projects (public_id, user_id, installation_id, name, repo_id, repo_full_name,
		                      deploy_branch, agent_id, compose_project, root_directory)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'stagely-' || substr($1, 6), $9)
		RETURNING *`,
		publicID, p.UserID, p.InstallationID, p.Name, p.RepoID, p.RepoFullName, p.DeployBranch, p.AgentID, p.RootDirectory)
}

// ProjectByID returns one project.
func (s *Store) ProjectByID(ctx context.Context, id int64) (Project, error) {
	return getAs[Project](ctx, s, "project", id, `SELECT * FROM projects WHERE id = $1`, id)
}

// ProjectForUser returns a project only if userID owns it; anyone else gets not found.
func (s *Store) ProjectForUser(ctx context.Context, userID, id int64) (Project, error) {
	return getAs[Project](ctx, s, "project", id, `SELECT * FROM projects WHERE id = $1 AND user_id = $2`, id, userID)
}

// ProjectsByUser lists a user's projects by name.
func (s *Store) ProjectsByUser(ctx context.Context, userID int64) ([]Project, error) {
	return selectAs[Project](ctx, s, `SELECT * FROM projects WHERE user_id = $1 ORDER BY name`, userID)
}

// ProjectsForPush returns the projects that deploy branch of the repository, whose
// installation is active (neither suspended nor deleted); several when the repository holds
// several projects in root directories of their own.
func (s *Store) ProjectsForPush(ctx context.Context, repoID int64, branch string) ([]Project, error) {
	return selectAs[Project](ctx, s, `
		SELECT p.* FROM projects p
		JOIN github_installations i ON i.id = p.installation_id
		WHERE p.repo_id = $1 AND p.deploy_branch = $2
		  AND i.suspended_at IS NULL AND i.deleted_at IS NULL
		ORDER BY p.id`, repoID, branch)
}

// ProjectsByRepo returns every project of a repository, whatever its branch.
func (s *Store) ProjectsByRepo(ctx context.Context, repoID int64) ([]Project, error) {
	return selectAs[Project](ctx, s, `SELECT * FROM projects WHERE repo_id = $1 ORDER BY id`, repoID)
}

// ProjectsByAgent returns the projects linked to an agent.
func (s *Store) ProjectsByAgent(ctx context.Context, agentID int64) ([]Project, error) {
	return selectAs[Project](ctx, s, `SELECT * FROM projects WHERE agent_id = $1 ORDER BY id`, agentID)
}

// SetProjectAgent links (agentID != nil) or unlinks a user's project and agent. The agent
// must belong to the same user: the check is in the statement, so it cannot race.
func (s *Store) SetProjectAgent(ctx context.Context, userID, projectID int64, agentID *int64) error {
	if agentID != nil {
		if _, err := s.AgentForUser(ctx, userID, *agentID); err != nil {
			return err
		}
	}
	return s.execOne(ctx, "project", projectID, `
		UPDATE projects SET agent_id = $3, updated_at = now()
		WHERE id = $1 AND user_id = $2
		  AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM agents a WHERE a.id = $3 AND a.user_id = $2))`,
		projectID, userID, agentID)
}

// SetProjectSource changes what a project deploys: the branch, and the folder of the
// repository (its root directory, "" for the repository root), together so that a move to a
// branch and folder another project holds is one conflict, never half done.
func (s *Store) SetProjectSource(ctx context.Context, userID, projectID int64, branch, rootDir string) error {
	return s.execOne(ctx, "project", projectID, `
		UPDATE projects SET deploy_branch = $3, root_directory = $4, updated_at = now() WHERE id = $1 AND user_id = $2`,
		projectID, userID, branch, rootDir)
}

// DeleteProject removes a user's project with its secrets, deployments and logs.
func (s *Store) DeleteProject(ctx context.Context, userID, projectID int64) error {
	return s.execOne(ctx, "project", projectID, `DELETE FROM projects WHERE id = $1 AND user_id = $2`, projectID, userID)
}

const publicIDAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func newPublicID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw project id: %w", err)
	}
	for i := range b {
		// 256 % 36 = 4: the bias is small and the id is not a secret.
		b[i] = publicIDAlphabet[int(b[i])%len(publicIDAlphabet)]
	}
	return "proj_" + string(b), nil
}
