package githubsim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// obj is a JSON object under construction; GitHub's bodies are wide and mostly URLs, so maps keep
// the builders short and let tests compare key sets with GitHub's published examples.
type obj = map[string]any

func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// simpleUser is GitHub's simple-user object for an account login (user or organization).
func (st *state) simpleUser(login string) obj {
	api := st.baseURL + "/users/" + login
	typ := "User"
	for _, inst := range st.installations {
		if strings.EqualFold(inst.account, login) {
			typ = inst.accountType
		}
	}
	if strings.EqualFold(login, st.app.ownerLogin) && st.userByLogin(login) == nil {
		typ = "Organization"
	}
	id := st.accountID(login)
	kind := "User"
	if typ == "Organization" {
		kind = "Organization"
	}
	return obj{
		"login":               login,
		"id":                  id,
		"node_id":             nodeID(kind, id),
		"avatar_url":          fmt.Sprintf("%s/avatars/u/%d?v=4", st.baseURL, id),
		"gravatar_id":         "",
		"url":                 api,
		"html_url":            st.baseURL + "/" + login,
		"followers_url":       api + "/followers",
		"following_url":       api + "/following{/other_user}",
		"gists_url":           api + "/gists{/gist_id}",
		"starred_url":         api + "/starred{/owner}{/repo}",
		"subscriptions_url":   api + "/subscriptions",
		"organizations_url":   api + "/orgs",
		"repos_url":           api + "/repos",
		"events_url":          api + "/events{/privacy}",
		"received_events_url": api + "/received_events",
		"type":                typ,
		"user_view_type":      "public",
		"site_admin":          false,
	}
}

// repository is GitHub's repository object; full adds the fields of GET /repos/{o}/{r}.
func (st *state) repository(r *repo, full bool) obj {
	api := st.baseURL + "/repos/" + r.fullName()
	html := st.baseURL + "/" + r.fullName()
	o := obj{
		"id":                          r.id,
		"node_id":                     nodeID("Repository", r.id),
		"name":                        r.name,
		"full_name":                   r.fullName(),
		"private":                     true,
		"owner":                       st.simpleUser(r.owner),
		"html_url":                    html,
		"description":                 nil,
		"fork":                        false,
		"url":                         api,
		"created_at":                  iso(r.createdAt),
		"updated_at":                  iso(r.pushedAt),
		"pushed_at":                   iso(r.pushedAt),
		"git_url":                     "git://" + strings.TrimPrefix(strings.TrimPrefix(st.baseURL, "http://"), "https://") + "/" + r.fullName() + ".git",
		"ssh_url":                     "git@sim:" + r.fullName() + ".git",
		"clone_url":                   html + ".git",
		"svn_url":                     html,
		"homepage":                    nil,
		"size":                        0,
		"stargazers_count":            0,
		"watchers_count":              0,
		"language":                    nil,
		"has_issues":                  true,
		"has_projects":                true,
		"has_downloads":               true,
		"has_wiki":                    true,
		"has_pages":                   false,
		"has_discussions":             false,
		"forks_count":                 0,
		"mirror_url":                  nil,
		"archived":                    false,
		"disabled":                    false,
		"open_issues_count":           0,
		"license":                     nil,
		"allow_forking":               true,
		"is_template":                 false,
		"web_commit_signoff_required": false,
		"topics":                      []string{},
		"custom_properties":           obj{},
		"visibility":                  "private",
		"forks":                       0,
		"open_issues":                 0,
		"watchers":                    0,
		"default_branch":              r.defaultBranch,
	}
	repositoryLinks(o, api)
	if full {
		o["network_count"] = 0
		o["subscribers_count"] = 0
		o["permissions"] = obj{"admin": false, "maintain": false, "push": false, "triage": false, "pull": true}
	}
	return o
}

// repositoryLinks adds a repository's URL templates of its sub-resources, below its API URL.
func repositoryLinks(o obj, api string) {
	for _, l := range [...]struct{ key, path string }{
		{"forks_url", "/forks"},
		{"keys_url", "/keys{/key_id}"},
		{"collaborators_url", "/collaborators{/collaborator}"},
		{"teams_url", "/teams"},
		{"hooks_url", "/hooks"},
		{"issue_events_url", "/issues/events{/number}"},
		{"events_url", "/events"},
		{"assignees_url", "/assignees{/user}"},
		{"branches_url", "/branches{/branch}"},
		{"tags_url", "/tags"},
		{"blobs_url", "/git/blobs{/sha}"},
		{"git_tags_url", "/git/tags{/sha}"},
		{"git_refs_url", "/git/refs{/sha}"},
		{"trees_url", "/git/trees{/sha}"},
		{"statuses_url", "/statuses/{sha}"},
		{"languages_url", "/languages"},
		{"stargazers_url", "/stargazers"},
		{"contributors_url", "/contributors"},
		{"subscribers_url", "/subscribers"},
		{"subscription_url", "/subscription"},
		{"commits_url", "/commits{/sha}"},
		{"git_commits_url", "/git/commits{/sha}"},
		{"comments_url", "/comments{/number}"},
		{"issue_comment_url", "/issues/comments{/number}"},
		{"contents_url", "/contents/{+path}"},
		{"compare_url", "/compare/{base}...{head}"},
		{"merges_url", "/merges"},
		{"archive_url", "/{archive_format}{/ref}"},
		{"downloads_url", "/downloads"},
		{"issues_url", "/issues{/number}"},
		{"pulls_url", "/pulls{/number}"},
		{"milestones_url", "/milestones{/number}"},
		{"notifications_url", "/notifications{?since,all,participating}"},
		{"labels_url", "/labels{/name}"},
		{"releases_url", "/releases{/id}"},
		{"deployments_url", "/deployments"},
	} {
		o[l.key] = api + l.path
	}
}

// repositoryForPush is the repository object as push deliveries carry it: integer timestamps and the
// owner with name and email, as in GitHub's push examples.
func (st *state) repositoryForPush(r *repo) obj {
	o := st.repository(r, false)
	o["created_at"] = r.createdAt.Unix()
	o["pushed_at"] = r.pushedAt.Unix()
	owner := st.simpleUser(r.owner)
	owner["name"] = r.owner
	owner["email"] = nil
	if u := st.userByLogin(r.owner); u != nil {
		owner["email"] = u.email
	}
	o["owner"] = owner
	o["stargazers"] = 0
	o["master_branch"] = r.defaultBranch
	return o
}

// repositoryMini is the short repository object of installation deliveries.
func (st *state) repositoryMini(r *repo) obj {
	return obj{"id": r.id, "node_id": nodeID("Repository", r.id), "name": r.name, "full_name": r.fullName(), "private": true}
}

func (st *state) installationJSON(inst *installation) obj {
	var suspendedAt any
	var suspendedBy any
	if inst.suspendedAt != nil {
		suspendedAt = iso(*inst.suspendedAt)
		suspendedBy = st.simpleUser(inst.account)
	}
	return obj{
		"id":                        inst.id,
		"client_id":                 st.app.clientID,
		"account":                   st.simpleUser(inst.account),
		"repository_selection":      inst.selection,
		"access_tokens_url":         fmt.Sprintf("%s/app/installations/%d/access_tokens", st.baseURL, inst.id),
		"repositories_url":          st.baseURL + "/installation/repositories",
		"html_url":                  fmt.Sprintf("%s/settings/installations/%d", st.baseURL, inst.id),
		"app_id":                    st.app.id,
		"app_slug":                  st.app.slug,
		"target_id":                 inst.accountID,
		"target_type":               inst.accountType,
		"permissions":               copyPerms(inst.permissions),
		"events":                    append([]string{}, st.app.events...),
		"created_at":                iso(inst.createdAt),
		"updated_at":                iso(inst.createdAt),
		"single_file_name":          nil,
		"has_multiple_single_files": false,
		"single_file_paths":         []string{},
		"suspended_by":              suspendedBy,
		"suspended_at":              suspendedAt,
	}
}

// appJSON is GitHub's integration object for the Sim's App.
func (st *state) appJSON() obj {
	a := &st.app
	external := a.externalURL
	if external == "" {
		external = st.baseURL + "/apps/" + a.slug
	}
	var desc any
	if a.description != "" {
		desc = a.description
	}
	return obj{
		"id":                  a.id,
		"slug":                a.slug,
		"client_id":           a.clientID,
		"node_id":             nodeID("App", a.id),
		"owner":               st.simpleUser(a.ownerLogin),
		"name":                a.name,
		"description":         desc,
		"external_url":        external,
		"html_url":            st.baseURL + "/apps/" + a.slug,
		"created_at":          iso(a.createdAt),
		"updated_at":          iso(a.createdAt),
		"permissions":         copyPerms(a.permissions),
		"events":              append([]string{}, a.events...),
		"installations_count": len(st.installations),
	}
}

// privateUser is GET /user for a user token.
func (st *state) privateUser(u *user) obj {
	o := st.simpleUser(u.login)
	extra := obj{
		"user_view_type": "private", // the discriminator GitHub sets when you read yourself
		"name":           u.name, "company": nil, "blog": "", "location": nil, "email": u.email, "hireable": nil,
		"bio": nil, "twitter_username": nil, "notification_email": u.email, "public_repos": 0, "public_gists": 0,
		"followers": 0, "following": 0, "created_at": iso(u.createdAt), "updated_at": iso(u.createdAt),
		"private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 0,
		"collaborators": 0, "two_factor_authentication": true,
		"plan": obj{"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
