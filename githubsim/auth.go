package githubsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GitHub's own wording for JWT problems on /app endpoints.
const (
	msgJWTUndecodable = "A JSON web token could not be decoded"
	msgJWTExpired     = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	msgJWTTooFar      = "'Expiration time' claim ('exp') is too far in the future"
	msgJWTIssuedLater = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
	msgBadCredentials = "Bad credentials"
	msgNotAccessible  = "Resource not accessible by integration"
	docsJWT           = "https://docs.github.com/rest"
)

// clockSkew is how far GitHub tolerates clocks apart; clients set iat 30-60 s in the past for this.
const clockSkew = 60 * time.Second

// bearer extracts the credential from "Authorization: Bearer x" or "token x".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "bearer ", "token ", "Token "} {
		if v, ok := strings.CutPrefix(h, p); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// verifyJWT checks an App JWT as GitHub does: RS256 with the App's key, iss = app id or client id,
// exp in the future but no more than 10 minutes ahead, iat not in the future. It returns GitHub's
// message for the first problem, or "" for a good token.
func (s *Sim) verifyJWT(raw string) string {
	s.mu.Lock()
	pub := &s.st.app.key.PublicKey
	appID, clientID := s.st.app.id, s.st.app.clientID
	s.mu.Unlock()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return msgJWTUndecodable
	}
	switch iss := claims["iss"].(type) {
	case float64:
		if int64(iss) != appID {
			return msgJWTUndecodable
		}
	case string:
		if iss != strconv.FormatInt(appID, 10) && iss != clientID {
			return msgJWTUndecodable
		}
	default:
		return msgJWTUndecodable
	}
	now := s.now()
	exp, ok := claims["exp"].(float64)
	if !ok || time.Unix(int64(exp), 0).Before(now.Add(-clockSkew)) {
		return msgJWTExpired
	}
	if time.Unix(int64(exp), 0).After(now.Add(10*time.Minute + clockSkew)) {
		return msgJWTTooFar
	}
	iat, ok := claims["iat"].(float64)
	if !ok || time.Unix(int64(iat), 0).After(now.Add(clockSkew)) {
		return msgJWTIssuedLater
	}
	return ""
}

// jwtOnly guards endpoints that "must use a JWT".
func (s *Sim) jwtOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ci := info(r.Context())
		raw := bearer(r)
		if raw == "" {
			writeError(w, http.StatusUnauthorized, msgJWTUndecodable, docsJWT)
			return
		}
		ci.credential = CredentialJWT
		ci.rateKey = "app"
		if problem := s.verifyJWT(raw); problem != "" {
			writeError(w, http.StatusUnauthorized, problem, docsJWT)
			return
		}
		h(w, r)
	}
}

// lookupToken finds a live installation or user token; expired and unknown tokens are "Bad credentials".
func (s *Sim) lookupToken(r *http.Request) (*token, bool) {
	raw := bearer(r)
	ci := info(r.Context())
	if raw == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tokens[raw]
	switch {
	case t == nil && strings.Count(raw, ".") == 2:
		ci.credential = CredentialJWT
	case t == nil:
		ci.credential = CredentialUnknown
	case t.kind == refreshToken:
		ci.credential = CredentialUnknown
		return nil, true
	case t.kind == installationToken:
		ci.credential = CredentialInstallation
		ci.rateKey = fmt.Sprintf("installation:%d", t.installationID)
	default:
		ci.credential = CredentialUser
		ci.rateKey = "user:" + t.userLogin
	}
	if t == nil || !s.now().Before(t.expiresAt) {
		return nil, true
	}
	if t.kind == installationToken {
		if inst := s.st.installations[t.installationID]; inst == nil || inst.suspendedAt != nil {
			return nil, true
		}
	}
	return t, true
}

// repoAccess is what a repository handler gets after the credential was checked.
type repoAccess struct {
	repo  *repo
	token *token
}

// repoCall guards /repos/{owner}/{repo}/... endpoints: an installation token that covers the repository
// and holds the needed permission. Repositories are private, so anything else that cannot see the
// repository gets 404, as GitHub answers for private repositories.
func (s *Sim) repoCall(perm, level string, h func(http.ResponseWriter, *http.Request, repoAccess)) http.HandlerFunc {
	return s.repoCallAny([]string{perm}, level, h)
}

// repoCallAny is repoCall for endpoints that accept any one of several permissions at level, as
// GitHub's comments on pull requests take issues or pull_requests; a 403 lists every accepted
// set in X-Accepted-GitHub-Permissions, separated by "; " as GitHub does.
func (s *Sim) repoCallAny(perms []string, level string, h func(http.ResponseWriter, *http.Request, repoAccess)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, presented := s.lookupToken(r)
		if presented && t == nil {
			if info(r.Context()).credential == CredentialJWT {
				// An App JWT speaks for the App, not an installation: it reaches no repository.
				writeError(w, http.StatusForbidden, msgNotAccessible, docsREST)
				return
			}
			writeError(w, http.StatusUnauthorized, msgBadCredentials, docsREST)
			return
		}
		full := r.PathValue("owner") + "/" + r.PathValue("repo")
		s.mu.Lock()
		rp := s.st.repo(full)
		s.mu.Unlock()
		if t == nil || rp == nil || t.kind != installationToken || t.installationID != rp.installationID ||
			(t.repoIDs != nil && !t.repoIDs[rp.id]) {
			if t != nil && t.kind == userToken && rp != nil {
				writeError(w, http.StatusForbidden, msgNotAccessible, docsREST)
				return
			}
			writeError(w, http.StatusNotFound, "Not Found", docsREST)
			return
		}
		if !slices.ContainsFunc(perms, func(p string) bool { return permits(t.permissions[p], level) }) {
			accepted := make([]string, len(perms))
			for i, p := range perms {
				accepted[i] = p + "=" + level
			}
			w.Header().Set("X-Accepted-GitHub-Permissions", strings.Join(accepted, "; "))
			writeError(w, http.StatusForbidden, msgNotAccessible, docsREST)
			return
		}
		h(w, r, repoAccess{repo: rp, token: t})
	}
}

// userOnly guards /user endpoints: a user access token (ghu_).
func (s *Sim) userOnly(h func(http.ResponseWriter, *http.Request, *token)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, presented := s.lookupToken(r)
		if !presented {
			writeError(w, http.StatusUnauthorized, "Requires authentication", docsREST)
			return
		}
		if t == nil {
			writeError(w, http.StatusUnauthorized, msgBadCredentials, docsREST)
			return
		}
		if t.kind != userToken {
			writeError(w, http.StatusForbidden, msgNotAccessible, docsREST)
			return
		}
		h(w, r, t)
	}
}

// permits says whether a granted level ("read", "write", "admin") covers the needed one.
func permits(granted, needed string) bool {
	rank := map[string]int{"read": 1, "write": 2, "admin": 3}
	return granted != "" && rank[granted] >= rank[needed]
}
