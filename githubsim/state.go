package githubsim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// state is everything the Sim knows; guarded by Sim.mu.
type state struct {
	nextID      int64
	baseURL     string
	downloadURL string

	app           app
	users         map[string]*user // by lower-case login
	authorizeAs   string
	installations map[int64]*installation
	repos         map[string]*repo // by lower-case full name
	tokens        map[string]*token
	checkRuns     map[int64]*checkRun
	suites        map[suiteKey]*checkSuite
	statuses      []*commitStatus
	deployments   map[int64]*deployment
	comments      map[int64]*issueComment
	downloads     map[string]*download
	oauthCodes    map[string]*oauthCode
	manifestCodes map[string]*manifestCode
	deliveries    []*Delivery
	calls         []Call
	faults        []*activeFault
	faultSeq      int
}

type app struct {
	id            int64
	slug          string
	name          string
	description   string
	externalURL   string
	key           *rsa.PrivateKey
	webhookSecret string
	webhookURL    string
	clientID      string
	clientSecret  string
	callbackURLs  []string
	hookID        int64
	ownerLogin    string
	ownerID       int64
	permissions   map[string]string
	events        []string
	createdAt     time.Time
}

type user struct {
	id        int64
	login     string
	name      string
	email     string
	createdAt time.Time
}

type installation struct {
	id          int64
	account     string
	accountID   int64
	accountType string // "User" or "Organization"
	permissions map[string]string
	selection   string // "all" or "selected"
	members     map[string]bool
	suspendedAt *time.Time
	createdAt   time.Time
}

type repo struct {
	id             int64
	owner          string
	name           string
	installationID int64
	defaultBranch  string
	branches       map[string]string // name -> sha
	tags           map[string]string // name -> sha
	commits        map[string]*commit
	roles          map[string]string  // lower-case login -> role set by SetRepoRole
	lags           map[string]*refLag // branch -> what its ref reads answer for now (LagBranch)
	pulls          map[int]*pullRequest
	forkOf         string // the full name of the repository this one is a fork of (Fork)
	createdAt      time.Time
	pushedAt       time.Time
}

func (r *repo) fullName() string { return r.owner + "/" + r.name }

type commit struct {
	sha      string
	treeSHA  string
	files    map[string][]byte
	parents  []string
	message  string
	author   signature
	authored time.Time
}

type signature struct {
	name     string
	email    string
	username string
}

type tokenKind int

const (
	installationToken tokenKind = iota + 1
	userToken
	refreshToken // never authorizes a call; only trades for a new user token
)

type token struct {
	kind           tokenKind
	installationID int64
	repoIDs        map[int64]bool // nil: every repository of the installation
	permissions    map[string]string
	userLogin      string
	expiresAt      time.Time
}

type suiteKey struct {
	repoID  int64
	headSHA string
}

type checkSuite struct {
	id      int64
	headSHA string
	branch  string
}

type download struct {
	repoID    int64
	sha       string
	expiresAt time.Time
}

type oauthCode struct {
	login       string
	redirectURI string
	expiresAt   time.Time
}

type manifestCode struct {
	manifest  manifest
	expiresAt time.Time
}

func (st *state) id() int64 {
	st.nextID++
	return st.nextID
}

func (st *state) repo(fullName string) *repo {
	return st.repos[strings.ToLower(fullName)]
}

// readRepo returns what read copies out of the repository fullName under the lock, so a test
// never shares the simulator's state; nil when there is no such repository.
func readRepo[T any](s *Sim, fullName string, read func(rp *repo) []T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(fullName)
	if rp == nil {
		return nil
	}
	return read(rp)
}

func (st *state) userByLogin(login string) *user {
	return st.users[strings.ToLower(login)]
}

// accountID gives a stable id for an account login, a user's own id when it is a known user.
func (st *state) accountID(login string) int64 {
	if u := st.userByLogin(login); u != nil {
		return u.id
	}
	for _, inst := range st.installations {
		if strings.EqualFold(inst.account, login) {
			return inst.accountID
		}
	}
	if strings.EqualFold(login, st.app.ownerLogin) {
		return st.app.ownerID
	}
	return st.id()
}

// reposOf lists an installation's repositories in id order.
func (st *state) reposOf(instID int64) []*repo {
	var out []*repo
	for _, r := range st.repos {
		if r.installationID == instID {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// resolve turns a branch, tag, full or abbreviated sha (optionally refs/heads/..., heads/...) into a commit.
func (r *repo) resolve(ref string) *commit {
	if ref == "" {
		ref = r.defaultBranch
	}
	for _, p := range []string{"refs/heads/", "heads/"} {
		if name, ok := strings.CutPrefix(ref, p); ok {
			return r.commits[r.branches[name]]
		}
	}
	for _, p := range []string{"refs/tags/", "tags/"} {
		if name, ok := strings.CutPrefix(ref, p); ok {
			return r.commits[r.tags[name]]
		}
	}
	if sha, ok := r.branches[ref]; ok {
		return r.commits[sha]
	}
	if sha, ok := r.tags[ref]; ok {
		return r.commits[sha]
	}
	if c, ok := r.commits[strings.ToLower(ref)]; ok {
		return c
	}
	if len(ref) >= 7 && isHex(ref) {
		var found *commit
		for sha, c := range r.commits {
			if strings.HasPrefix(sha, strings.ToLower(ref)) {
				if found != nil {
					return nil // ambiguous, as git would say
				}
				found = c
			}
		}
		return found
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s[:len(s)&^1])
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("githubsim: random: %v", err))
	}
	return hex.EncodeToString(b)
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomToken makes a GitHub-style token: a prefix such as "ghs_" and 36 characters (40 in all).
func randomToken(prefix string) string {
	b := make([]byte, 36)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("githubsim: random: %v", err))
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return prefix + string(b)
}

// guid makes a delivery id shaped like GitHub's (a version-1-looking UUID string).
func guid() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// nodeID mimics GitHub's legacy global node ids ("MDEwOlJlcG9zaXRvcnkxMjM=" for Repository 123).
func nodeID(kind string, id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%02d:%s%d", len(kind), kind, id))
}

func defaultAppPermissions() map[string]string {
	return map[string]string{
		"checks":        "write",
		"contents":      "read",
		"deployments":   "write",
		"metadata":      "read",
		"pull_requests": "write",
		"statuses":      "write",
	}
}

func copyPerms(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
