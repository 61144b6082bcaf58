package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// projectName is the database's own rule for project names.
var projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Constraint names from migrations/sql/00001_core.sql that the API turns into 409s.
const (
	constraintProjectName   = "projects_user_id_name_key"
	constraintProjectBranch = "projects_repo_id_deploy_branch_root_directory_key"
	constraintAgentName     = "agents_user_id_name_key"
)

// conflictOn reports whether err broke the named uniqueness rule.
func conflictOn(err error, constraint string) bool {
	var ce *store.ConstraintError
	return errors.As(err, &ce) && errors.Is(ce.Kind, store.ErrConflict) && ce.Constraint == constraint
}

func checkProjectName(name string) *Validation {
	if !projectName.MatchString(name) {
		return &Validation{Field: "name", Message: "must be 1–63 characters of a-z, 0-9, _ and -, starting with a letter or digit"}
	}
	return nil
}

// checkBranch applies git's branch-name rules (git check-ref-format), so a branch that can
// never be pushed is refused now rather than silently never deploying.
func checkBranch(b string) *Validation {
	bad := func(msg string) *Validation { return &Validation{Field: "deploy_branch", Message: msg} }
	switch {
	case b == "":
		return bad("must not be empty")
	case len(b) > 255:
		return bad("must be at most 255 bytes")
	case strings.HasPrefix(b, "refs/"):
		return bad("give the branch name without refs/heads/ (like main)")
	case strings.IndexFunc(b, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0,
		strings.ContainsAny(b, "~^:?*[\\"):
		return bad("must not contain spaces, control characters or any of ~ ^ : ? * [ \\")
	case strings.Contains(b, ".."), strings.Contains(b, "@{"), strings.Contains(b, "//"),
		strings.HasPrefix(b, "/"), strings.HasSuffix(b, "/"), strings.HasPrefix(b, "-"),
		strings.HasPrefix(b, "."), strings.HasSuffix(b, "."), strings.Contains(b, "/."),
		strings.HasSuffix(b, ".lock"), b == "@":
		return bad("is not a valid git branch name")
	}
	return nil
}

// defaultProjectName derives a valid name from a repository name: lower-cased, every other
// character replaced by '-'.
func defaultProjectName(repoName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(repoName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "_-")
	if len(name) > 63 {
		name = name[:63]
	}
	if name == "" {
		return "project"
	}
	return name
}

// projectViews renders projects with their agent and GitHub installation id, reading each
// agent and installation once.
func (a *API) projectViews(ctx context.Context, userID int64, ps []store.Project) ([]projectView, error) {
	agents := map[int64]store.Agent{}
	for _, p := range ps {
		if p.AgentID.Valid || p.PreviewAgentID.Valid {
			list, err := a.st.AgentsByUser(ctx, userID)
			if err != nil {
				return nil, err
			}
			for _, ag := range list {
				agents[ag.ID] = ag
			}
			break
		}
	}
	installs := map[int64]int64{}
	out := make([]projectView, 0, len(ps))
	for _, p := range ps {
		ghID, ok := installs[p.InstallationID]
		if !ok {
			in, err := a.st.InstallationByID(ctx, p.InstallationID)
			if err != nil {
				return nil, fmt.Errorf("installation of project %d: %w", p.ID, err)
			}
			ghID = in.GitHubID
			installs[p.InstallationID] = ghID
		}
		v := projectView{
			ID: p.ID, PublicID: p.PublicID, Name: p.Name, RepoID: p.RepoID, RepoFullName: p.RepoFullName,
			DeployBranch: p.DeployBranch, RootDirectory: p.RootDirectory, ComposeProject: p.ComposeProject, InstallationID: ghID,
			CreatedAt: timestamp(p.CreatedAt), UpdatedAt: timestamp(p.UpdatedAt), PreviewsEnabled: p.PreviewsEnabled,
		}
		v.Agent = agentRefOf(agents, p.AgentID)
		v.PreviewAgent = agentRefOf(agents, p.PreviewAgentID)
		out = append(out, v)
	}
	return out, nil
}

// agentRefOf is the agent id refers to, or nil for NULL (or an agent no longer listed).
func agentRefOf(agents map[int64]store.Agent, id sql.NullInt64) *agentRef {
	if !id.Valid {
		return nil
	}
	ag, ok := agents[id.Int64]
	if !ok {
		return nil
	}
	return &agentRef{ID: ag.ID, Name: ag.Name, Status: ag.Status}
}

// writeProject answers p, as the API shows a project, with status.
func (a *API) writeProject(c *gin.Context, status int, userID int64, p store.Project) error {
	vs, err := a.projectViews(c.Request.Context(), userID, []store.Project{p})
	if err != nil {
		return err
	}
	c.JSON(status, vs[0])
	return nil
}

// userProject loads the :id project if the user owns it; otherwise a 404.
func (a *API) userProject(c *gin.Context, u store.User) (store.Project, error) {
	return owned(c, u, "project", a.st.ProjectForUser)
}

// owned loads the thing (what: "project", "agent") the path's :id names through forUser,
// which finds it only when u owns it: anyone else's is a 404 like a missing one.
func owned[T any](c *gin.Context, u store.User, what string, forUser func(ctx context.Context, userID, id int64) (T, error)) (T, error) {
	id, err := pathID(c, "id", what)
	if err != nil {
		var zero T
		return zero, err
	}
	return forUser(c.Request.Context(), u.ID, id)
}

func (a *API) listProjects(c *gin.Context, u store.User) error {
	ps, err := a.st.ProjectsByUser(c.Request.Context(), u.ID)
	if err != nil {
		return err
	}
	vs, err := a.projectViews(c.Request.Context(), u.ID, ps)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, vs)
	return nil
}

func (a *API) getProject(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	return a.writeProject(c, http.StatusOK, u.ID, p)
}

type createProjectRequest struct {
	InstallationID int64   `json:"installation_id"`
	RepoID         int64   `json:"repo_id"`
	Name           *string `json:"name"`
	DeployBranch   *string `json:"deploy_branch"`
	RootDirectory  *string `json:"root_directory"`
	AgentID        *int64  `json:"agent_id"`
}

// branchTaken is the 409 for a second project on one root directory of a repository's branch.
func branchTaken(repo, branch, rootDir string) *Error {
	where := "the repository root"
	if rootDir != "" {
		where = rootDir + "/"
	}
	return conflict(fmt.Sprintf("branch %s of %s is already deployed from %s by a project: pick another root_directory or deploy_branch", branch, repo, where),
		Validation{Field: "root_directory", Message: "already used by a project for this repository and branch"})
}

// check names every field of the request that cannot work, before GitHub is asked anything.
func (req createProjectRequest) check() error {
	var vs []Validation
	if req.InstallationID <= 0 {
		vs = append(vs, Validation{Field: "installation_id", Message: "is required: the id of one of your GitHub installations (GET /api/installations)"})
	}
	if req.RepoID <= 0 {
		vs = append(vs, Validation{Field: "repo_id", Message: "is required: the id of a repository of that installation"})
	}
	if req.Name != nil {
		if v := checkProjectName(*req.Name); v != nil {
			vs = append(vs, *v)
		}
	}
	if req.DeployBranch != nil {
		if v := checkBranch(*req.DeployBranch); v != nil {
			vs = append(vs, *v)
		}
	}
	if req.RootDirectory != nil {
		if _, err := stagelyyaml.CleanRootDirectory(*req.RootDirectory); err != nil {
			vs = append(vs, Validation{Field: "root_directory", Message: err.Error()})
		}
	}
	if req.AgentID != nil && *req.AgentID <= 0 {
		vs = append(vs, Validation{Field: "agent_id", Message: "must be the id of one of your agents, or left out"})
	}
	if len(vs) > 0 {
		return invalid("the project cannot be created as sent", vs...)
	}
	return nil
}

// visibleRepository asks GitHub, with the user's own token, for the installation and the
// repository the request names, so GitHub decides whether the user may use them and the
// repository's facts come from GitHub, never from the request.
func (a *API) visibleRepository(c *gin.Context, req createProjectRequest) (github.UserInstallation, github.Repository, error) {
	ctx := c.Request.Context()
	tok, err := a.userToken(c)
	if err != nil {
		return github.UserInstallation{}, github.Repository{}, err
	}
	ins, err := a.github.UserInstallations(ctx, tok)
	if err != nil {
		return github.UserInstallation{}, github.Repository{}, err
	}
	i := slices.IndexFunc(ins, func(in github.UserInstallation) bool { return in.ID == req.InstallationID })
	if i < 0 {
		return github.UserInstallation{}, github.Repository{}, notFound("installation %d not found on GitHub, or you cannot see it", req.InstallationID)
	}
	repo, ok, err := a.userRepository(ctx, tok, ins[i].ID, req.RepoID)
	switch {
	case err != nil:
		return github.UserInstallation{}, github.Repository{}, err
	case !ok:
		return github.UserInstallation{}, github.Repository{}, notFound("repository %d not found in installation %d, or you cannot see it", req.RepoID, ins[i].ID)
	case !repo.Push:
		return github.UserInstallation{}, github.Repository{}, needWrite(repo.FullName, "link it to a project")
	}
	return ins[i], repo, nil
}

// userRepository finds repository repoID among those GitHub shows the user in installation
// instID; ok is false when it is not listed (the user cannot see it).
func (a *API) userRepository(ctx context.Context, tok string, instID, repoID int64) (repo github.Repository, ok bool, err error) {
	repos, err := a.github.UserRepositories(ctx, tok, instID)
	if err != nil {
		return github.Repository{}, false, err
	}
	j := slices.IndexFunc(repos, func(r github.Repository) bool { return r.ID == repoID })
	if j < 0 {
		return github.Repository{}, false, nil
	}
	return repos[j], true, nil
}

// needWrite refuses a user who may read a repository but not push to it. A project deploys
// its branch as the user who linked it, so linking or moving it takes what pushing does;
// otherwise a read-only collaborator could claim main before its maintainers.
func needWrite(repo, what string) *Error {
	return forbidden("you need write access to %s to %s: GitHub shows you can only read it", repo, what)
}

// canPushTo asks GitHub, with the user's own token, whether the user may still push to the
// project's repository.
func (a *API) canPushTo(c *gin.Context, p store.Project) error {
	ctx := c.Request.Context()
	tok, err := a.userToken(c)
	if err != nil {
		return err
	}
	in, err := a.st.InstallationByID(ctx, p.InstallationID)
	if err != nil {
		return err
	}
	repo, ok, err := a.userRepository(ctx, tok, in.GitHubID, p.RepoID)
	switch {
	case errors.Is(err, github.ErrNotFound):
		return forbidden("you need write access to %s: GitHub no longer shows you its installation", p.RepoFullName)
	case err != nil:
		return err
	case !ok:
		return forbidden("you need write access to %s: GitHub no longer shows it to you", p.RepoFullName)
	case !repo.Push:
		return needWrite(p.RepoFullName, "change the branch it deploys")
	}
	return nil
}

func (a *API) createProject(c *gin.Context, u store.User) error {
	var req createProjectRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	inst, repo, err := a.visibleRepository(c, req)
	if err != nil {
		return err
	}
	name := defaultProjectName(repo.Name)
	if req.Name != nil {
		name = *req.Name
	}
	branch := repo.DefaultBranch
	if req.DeployBranch != nil {
		branch = *req.DeployBranch
	}
	if v := checkBranch(branch); v != nil {
		return invalid(fmt.Sprintf("the default branch of %s cannot be deployed: pass deploy_branch", repo.FullName), *v)
	}
	var rootDir string
	if req.RootDirectory != nil {
		rootDir, _ = stagelyyaml.CleanRootDirectory(*req.RootDirectory) // checked above
	}

	ctx := c.Request.Context()
	var created store.Project
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		row := store.Installation{GitHubID: inst.ID, AccountLogin: inst.AccountLogin, AccountID: inst.AccountID, AccountType: inst.AccountType}
		if !inst.SuspendedAt.IsZero() {
			row.SuspendedAt.Time, row.SuspendedAt.Valid = inst.SuspendedAt, true
		}
		stored, err := tx.UpsertInstallation(ctx, row)
		if err != nil {
			return fmt.Errorf("record installation %d: %w", inst.ID, err)
		}
		if req.AgentID != nil {
			if _, err := tx.AgentForUser(ctx, u.ID, *req.AgentID); err != nil {
				return err
			}
		}
		created, err = tx.CreateProject(ctx, store.NewProject{
			UserID: u.ID, InstallationID: stored.ID, Name: name, RepoID: repo.ID,
			RepoFullName: repo.FullName, DeployBranch: branch, AgentID: req.AgentID, RootDirectory: rootDir,
		})
		switch {
		case conflictOn(err, constraintProjectBranch):
			return branchTaken(repo.FullName, branch, rootDir)
		case conflictOn(err, constraintProjectName):
			return conflict(fmt.Sprintf("you already have a project named %s: pass another name", name),
				Validation{Field: "name", Message: "already used by another of your projects"})
		case err != nil:
			return err
		}
		return audit(c, tx, u, "project.create", "project", created.ID, map[string]any{
			"name": name, "repo": repo.FullName, "deploy_branch": branch, "root_directory": rootDir,
		})
	})
	if err != nil {
		return err
	}
	return a.writeProject(c, http.StatusCreated, u.ID, created)
}

type updateProjectRequest struct {
	// AgentID and PreviewAgentID are raw so that null (unlink) differs from absent (leave alone).
	AgentID         json.RawMessage `json:"agent_id"`
	DeployBranch    *string         `json:"deploy_branch"`
	RootDirectory   *string         `json:"root_directory"`
	PreviewsEnabled *bool           `json:"previews_enabled"`
	PreviewAgentID  json.RawMessage `json:"preview_agent_id"`
}

// agentChange is what a nullable agent id field of a PATCH asks for: set says it was sent,
// id nil means null (unlink).
type agentChange struct {
	set bool
	id  *int64
}

// parseAgentChange reads a nullable agent id field; v names it when it is not an id or null.
func parseAgentChange(raw json.RawMessage, field, unlink string) (agentChange, *Validation) {
	if len(raw) == 0 {
		return agentChange{}, nil
	}
	if string(raw) == "null" {
		return agentChange{set: true}, nil
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil || id <= 0 {
		return agentChange{}, &Validation{Field: field, Message: "must be the id of one of your agents, or null to " + unlink}
	}
	return agentChange{set: true, id: &id}, nil
}

// projectChange is a checked PATCH of a project.
type projectChange struct {
	req          updateProjectRequest
	agent        agentChange
	previewAgent agentChange
}

// check names every field of the request that cannot work.
func (req updateProjectRequest) check() (projectChange, error) {
	var vs []Validation
	ch := projectChange{req: req}
	var v *Validation
	if ch.agent, v = parseAgentChange(req.AgentID, "agent_id", "unlink"); v != nil {
		vs = append(vs, *v)
	}
	if ch.previewAgent, v = parseAgentChange(req.PreviewAgentID, "preview_agent_id", "use the project's own agent"); v != nil {
		vs = append(vs, *v)
	}
	if req.DeployBranch != nil {
		if v := checkBranch(*req.DeployBranch); v != nil {
			vs = append(vs, *v)
		}
	}
	if req.RootDirectory != nil {
		clean, err := stagelyyaml.CleanRootDirectory(*req.RootDirectory)
		if err != nil {
			vs = append(vs, Validation{Field: "root_directory", Message: err.Error()})
		}
		*ch.req.RootDirectory = clean
	}
	if len(vs) > 0 {
		return projectChange{}, invalid("the project cannot be changed as sent", vs...)
	}
	if !ch.agent.set && !ch.previewAgent.set && req.DeployBranch == nil && req.RootDirectory == nil && req.PreviewsEnabled == nil {
		return projectChange{}, invalid("nothing to change: send agent_id, deploy_branch, root_directory, previews_enabled and/or preview_agent_id")
	}
	return ch, nil
}

func (a *API) updateProject(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	var req updateProjectRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ch, err := req.check()
	if err != nil {
		return err
	}
	req = ch.req
	// Changing what a project deploys takes what pushing does, like linking it.
	if (req.DeployBranch != nil && *req.DeployBranch != p.DeployBranch) ||
		(req.RootDirectory != nil && *req.RootDirectory != p.RootDirectory) {
		if err := a.canPushTo(c, p); err != nil {
			return err
		}
	}
	ctx := c.Request.Context()
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		return applyProjectUpdate(ctx, c, tx, u, p, ch)
	})
	if err != nil {
		return err
	}
	p, err = a.st.ProjectForUser(ctx, u.ID, p.ID)
	if err != nil {
		return err
	}
	return a.writeProject(c, http.StatusOK, u.ID, p)
}

// applyProjectUpdate writes a checked update and its audit entry in tx.
func applyProjectUpdate(ctx context.Context, c *gin.Context, tx *store.Store, u store.User, p store.Project, ch projectChange) error {
	req := ch.req
	detail := map[string]any{}
	if ch.agent.set {
		if err := tx.SetProjectAgent(ctx, u.ID, p.ID, ch.agent.id); err != nil {
			return err
		}
		detail["agent_id"] = ch.agent.id
	}
	branch, rootDir := p.DeployBranch, p.RootDirectory
	if req.DeployBranch != nil {
		branch = *req.DeployBranch
		detail["deploy_branch"] = branch
	}
	if req.RootDirectory != nil {
		rootDir = *req.RootDirectory
		detail["root_directory"] = rootDir
	}
	if req.DeployBranch != nil || req.RootDirectory != nil {
		err := tx.SetProjectSource(ctx, u.ID, p.ID, branch, rootDir)
		if conflictOn(err, constraintProjectBranch) {
			return branchTaken(p.RepoFullName, branch, rootDir)
		}
		if err != nil {
			return err
		}
	}
	if err := applyPreviewSettings(ctx, tx, u, p, ch, detail); err != nil {
		return err
	}
	return audit(c, tx, u, "project.update", "project", p.ID, detail)
}

// applyPreviewSettings writes the previews switch and preview agent, when the PATCH sends them.
func applyPreviewSettings(ctx context.Context, tx *store.Store, u store.User, p store.Project, ch projectChange, detail map[string]any) error {
	if ch.req.PreviewsEnabled == nil && !ch.previewAgent.set {
		return nil
	}
	enabled := p.PreviewsEnabled
	if ch.req.PreviewsEnabled != nil {
		enabled = *ch.req.PreviewsEnabled
		detail["previews_enabled"] = enabled
	}
	var agentID *int64
	if p.PreviewAgentID.Valid {
		agentID = &p.PreviewAgentID.Int64
	}
	if ch.previewAgent.set {
		agentID = ch.previewAgent.id
		detail["preview_agent_id"] = agentID
	}
	return tx.SetProjectPreviews(ctx, u.ID, p.ID, enabled, agentID)
}

func (a *API) deleteProject(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.DeleteProject(ctx, u.ID, p.ID); err != nil {
			return err
		}
		return audit(c, tx, u, "project.delete", "project", p.ID, map[string]any{"name": p.Name, "repo": p.RepoFullName})
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
