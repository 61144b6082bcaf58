package githubsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Repository roles, GitHub's base roles plus maintain and triage. The permission endpoint maps
// maintain to write and triage to read, as GitHub documents.
var repoRoles = []string{"admin", "maintain", "write", "triage", "read", "none"}

const docsCollaboratorPermission = "https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user"

// SetRepoRole gives a user a role on one repository: admin, maintain, write, triage, read or
// none. Without one, the account that owns the repository is admin, a member of the
// installation's account (AddInstallationMember) has write, and anybody else has none.
func (s *Sim) SetRepoRole(fullName, login, role string) error {
	if !slices.Contains(repoRoles, role) {
		return fmt.Errorf("set role of %s on %s: role %q: want one of %v", login, fullName, role, repoRoles)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(fullName)
	if rp == nil {
		return fmt.Errorf("set role of %s on %s: repository not found", login, fullName)
	}
	if s.st.userByLogin(login) == nil {
		return fmt.Errorf("set role of %s on %s: no such user (AddUser first)", login, fullName)
	}
	if rp.roles == nil {
		rp.roles = map[string]string{}
	}
	rp.roles[strings.ToLower(login)] = role
	return nil
}

// roleOf is a user's role on a repository.
func (st *state) roleOf(rp *repo, login string) string {
	if role, ok := rp.roles[strings.ToLower(login)]; ok {
		return role
	}
	if strings.EqualFold(rp.owner, login) {
		return "admin"
	}
	if inst := st.installations[rp.installationID]; inst != nil && inst.members[strings.ToLower(login)] {
		return "write"
	}
	return "none"
}

// rolePermissions is the permissions object GitHub puts on a repository a user reads, for a role.
func rolePermissions(role string) obj {
	rank := map[string]int{"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}[role]
	return obj{"pull": rank >= 1, "triage": rank >= 2, "push": rank >= 3, "maintain": rank >= 4, "admin": rank >= 5}
}

// basePermission maps a role to the legacy base permission: maintain is write, triage is read.
func basePermission(role string) string {
	switch role {
	case "maintain":
		return "write"
	case "triage":
		return "read"
	default:
		return role
	}
}

// getCollaboratorPermission is GET /repos/{owner}/{repo}/collaborators/{username}/permission.
// An unknown login is 404; a user with no access gets permission "none".
func (s *Sim) getCollaboratorPermission(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.userByLogin(r.PathValue("username"))
	if u == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsCollaboratorPermission)
		return
	}
	role := s.st.roleOf(a.repo, u.login)
	collaborator := s.st.simpleUser(u.login)
	collaborator["permissions"] = rolePermissions(role)
	collaborator["role_name"] = role
	collaborator["email"] = u.email
	collaborator["name"] = u.name
	writeJSON(w, http.StatusOK, obj{"permission": basePermission(role), "role_name": role, "user": collaborator})
}
