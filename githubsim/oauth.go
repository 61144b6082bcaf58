package githubsim

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GitHub's OAuth lifetimes: the code "will expire after 10 minutes"; user tokens last 8 hours and
// refresh tokens 6 months (expires_in 28800, refresh_token_expires_in 15811200).
const (
	oauthCodeTTL       = 10 * time.Minute
	userTokenTTL       = 28800 * time.Second
	refreshTokenTTL    = 15811200 * time.Second
	docsTokenErrors    = "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
	docsAuthorizeError = "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"
)

// SetAuthorizeAs picks the user who "clicks Authorize" in the OAuth flow; "" makes the user deny.
func (s *Sim) SetAuthorizeAs(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.authorizeAs = login
}

// authorize is github.com/login/oauth/authorize: it approves at once as the configured user and
// redirects back with code and state.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Get("client_id") != s.st.app.clientID {
		http.Error(w, "404 page not found: unknown client_id", http.StatusNotFound)
		return
	}
	redirect := q.Get("redirect_uri")
	callbacks := s.st.app.callbackURLs
	back := func(target string, params url.Values) {
		if st := q.Get("state"); st != "" {
			params.Set("state", st)
		}
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		http.Redirect(w, r, target+sep+params.Encode(), http.StatusFound)
	}
	switch {
	case redirect == "" && len(callbacks) == 0:
		http.Error(w, "400 no redirect_uri and no callback URL registered", http.StatusBadRequest)
		return
	case redirect == "":
		// "If redirect_uri was not given, the first callback URL on your app's settings page will be used."
		redirect = callbacks[0]
	case len(callbacks) > 0 && !slices.Contains(callbacks, redirect):
		back(callbacks[0], url.Values{
			"error":             {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."},
			"error_uri":         {docsAuthorizeError + "#redirect-uri-mismatch"},
		})
		return
	}
	u := s.st.userByLogin(s.st.authorizeAs)
	if u == nil {
		back(redirect, url.Values{
			"error":             {"access_denied"},
			"error_description": {"The user has denied your application access."},
			"error_uri":         {docsAuthorizeError + "#access-denied"},
		})
		return
	}
	code := randomHex(10)
	s.st.oauthCodes[code] = &oauthCode{login: u.login, redirectURI: q.Get("redirect_uri"), expiresAt: s.now().Add(oauthCodeTTL)}
	back(redirect, url.Values{"code": {code}})
}

// oauthParams reads the exchange's parameters from a form, a JSON body or the query string.
func oauthParams(r *http.Request) url.Values {
	out := r.URL.Query()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var m map[string]any
		if json.NewDecoder(r.Body).Decode(&m) == nil {
			for k, v := range m {
				switch v := v.(type) {
				case string:
					out.Set(k, v)
				case float64:
					out.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
				}
			}
		}
		return out
	}
	if r.ParseForm() == nil {
		for k, v := range r.PostForm {
			out[k] = v
		}
	}
	return out
}

// exchangeCode is github.com/login/oauth/access_token. GitHub answers errors with 200 and an
// "error" field, in the encoding the Accept header asks for.
func (s *Sim) exchangeCode(w http.ResponseWriter, r *http.Request) {
	p := oauthParams(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(code, desc, anchor string) {
		writeOAuth(w, r, [][2]string{{"error", code}, {"error_description", desc}, {"error_uri", docsTokenErrors + anchor}})
	}
	if p.Get("client_id") != s.st.app.clientID || p.Get("client_secret") != s.st.app.clientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "#incorrect-client-credentials")
		return
	}
	var login string
	if p.Get("grant_type") == "refresh_token" {
		t := s.st.tokens[p.Get("refresh_token")]
		if t == nil || t.kind != refreshToken || !s.now().Before(t.expiresAt) {
			fail("bad_refresh_token", "The refresh token passed is incorrect or expired.", "#bad-refresh-token")
			return
		}
		delete(s.st.tokens, p.Get("refresh_token"))
		login = t.userLogin
	} else {
		c := s.st.oauthCodes[p.Get("code")]
		if c == nil || !s.now().Before(c.expiresAt) {
			fail("bad_verification_code", "The code passed is incorrect or expired.", "#bad-verification-code")
			return
		}
		if ru := p.Get("redirect_uri"); ru != "" && c.redirectURI != "" && ru != c.redirectURI {
			fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "#redirect-uri-mismatch2")
			return
		}
		delete(s.st.oauthCodes, p.Get("code")) // single use
		login = c.login
	}
	access, refresh := randomToken("ghu_"), randomToken("ghr_")
	now := s.now()
	s.st.tokens[access] = &token{kind: userToken, userLogin: login, expiresAt: now.Add(userTokenTTL)}
	s.st.tokens[refresh] = &token{kind: refreshToken, userLogin: login, expiresAt: now.Add(refreshTokenTTL)}
	writeOAuth(w, r, [][2]string{
		{"access_token", access},
		{"expires_in", strconv.Itoa(int(userTokenTTL.Seconds()))},
		{"refresh_token", refresh},
		{"refresh_token_expires_in", strconv.Itoa(int(refreshTokenTTL.Seconds()))},
		{"scope", ""},
		{"token_type", "bearer"},
	})
}

// writeOAuth answers in JSON, XML or (by default) form encoding, always with 200.
func writeOAuth(w http.ResponseWriter, r *http.Request, fields [][2]string) {
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, "application/json"):
		m := map[string]any{}
		for _, f := range fields {
			if n, err := strconv.Atoi(f[1]); err == nil && strings.HasSuffix(f[0], "expires_in") {
				m[f[0]] = n
			} else {
				m[f[0]] = f[1]
			}
		}
		writeJSON(w, http.StatusOK, m)
	case strings.Contains(accept, "application/xml"):
		var b strings.Builder
		b.WriteString("<OAuth>")
		for _, f := range fields {
			fmt.Fprintf(&b, "<%s>", f[0])
			_ = xml.EscapeText(&b, []byte(f[1]))
			fmt.Fprintf(&b, "</%s>", f[0])
		}
		b.WriteString("</OAuth>")
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(b.String()))
	default:
		v := url.Values{}
		for _, f := range fields {
			v.Set(f[0], f[1])
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(v.Encode()))
	}
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request, t *token) {
	s.mu.Lock()
	u := s.st.userByLogin(t.userLogin)
	var body obj
	if u != nil {
		body = s.st.privateUser(u)
	}
	s.mu.Unlock()
	if u == nil {
		writeError(w, http.StatusUnauthorized, msgBadCredentials, docsREST)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// visibleTo lists the installations a user can see: on their own account or as a member.
func (st *state) visibleTo(login string) []*installation {
	var out []*installation
	for _, inst := range st.installations {
		if strings.EqualFold(inst.account, login) || inst.members[strings.ToLower(login)] {
			out = append(out, inst)
		}
	}
	slices.SortFunc(out, func(a, b *installation) int { return int(a.id - b.id) })
	return out
}

func (s *Sim) listUserInstallations(w http.ResponseWriter, r *http.Request, t *token) {
	s.mu.Lock()
	items := []any{}
	for _, inst := range s.st.visibleTo(t.userLogin) {
		items = append(items, s.st.installationJSON(inst))
	}
	s.mu.Unlock()
	total := len(items)
	if page, ok := paginate(w, r, items); ok {
		writeJSON(w, http.StatusOK, obj{"total_count": total, "installations": page})
	}
}

func (s *Sim) listUserInstallationRepos(w http.ResponseWriter, r *http.Request, t *token) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	var inst *installation
	for _, i := range s.st.visibleTo(t.userLogin) {
		if i.id == id {
			inst = i
		}
	}
	items := []any{}
	if inst != nil {
		// A user sees the repositories they have a role on, with that role's permissions.
		for _, rp := range s.st.reposOf(id) {
			role := s.st.roleOf(rp, t.userLogin)
			if role == "none" {
				continue
			}
			o := s.st.repository(rp, true)
			o["permissions"] = rolePermissions(role)
			items = append(items, o)
		}
	}
	s.mu.Unlock()
	if inst == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-user-access-token")
		return
	}
	total := len(items)
	if page, ok := paginate(w, r, items); ok {
		writeJSON(w, http.StatusOK, obj{"total_count": total, "repository_selection": inst.selection, "repositories": page})
	}
}
