package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/auth"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/waittest"
)

func TestSignIn_SetsHardenedCookieAndStoresOnlyTheHash(t *testing.T) {
	t.Parallel()
	for _, https := range []bool{false, true} {
		name := "http"
		if https {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOptions{https: https})
			c := f.signIn("octocat")

			var setCookie *http.Cookie
			for _, r := range f.rec.seen.All() {
				if strings.Contains(r.url, "/auth/github/callback") {
					for _, line := range r.header.Values("Set-Cookie") {
						ck, err := http.ParseSetCookie(line)
						if err == nil && ck.Name == auth.SessionCookie {
							setCookie = ck
						}
					}
				}
			}
			if setCookie == nil {
				t.Fatal("the callback set no session cookie")
			}
			if !setCookie.HttpOnly || setCookie.SameSite != http.SameSiteLaxMode || setCookie.Path != "/" {
				t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q; want HttpOnly, Lax, /", setCookie.HttpOnly, setCookie.SameSite, setCookie.Path)
			}
			if setCookie.Secure != https {
				t.Errorf("cookie Secure=%v behind %s", setCookie.Secure, name)
			}
			if setCookie.MaxAge != int((14 * 24 * time.Hour).Seconds()) {
				t.Errorf("cookie Max-Age=%d, want 14 days", setCookie.MaxAge)
			}

			id, err := base64.RawURLEncoding.DecodeString(setCookie.Value)
			if err != nil || len(id) != 32 {
				t.Fatalf("cookie value is not 32 base64url bytes: %v", err)
			}
			want := sha256.Sum256(id)
			var idHash []byte
			var expires time.Time
			if err := f.st.DB().QueryRow(`SELECT id_hash, expires_at FROM sessions`).Scan(&idHash, &expires); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(idHash, want[:]) {
				t.Fatalf("stored id_hash %x, want sha256 of the cookie's id %x", idHash, want)
			}
			if d := expires.Sub(f.clock.Now()); d < 14*24*time.Hour-time.Minute || d > 14*24*time.Hour+time.Minute {
				t.Errorf("session expires in %v, want 14 days", d)
			}
			dump := dumpDatabase(t, f)
			for _, v := range []string{setCookie.Value, hex.EncodeToString(id)} {
				if strings.Contains(dump, v) {
					t.Fatalf("the database holds the session cookie's value")
				}
			}

			resp := f.get(c, "/api/me")
			var me struct {
				ID    int64  `json:"id"`
				Login string `json:"login"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != http.StatusOK || me.Login != "octocat" {
				t.Fatalf("/api/me = %d %+v (%v)", resp.StatusCode, me, err)
			}
			var githubID int64
			if err := f.st.DB().QueryRow(`SELECT github_id FROM users WHERE id = $1`, me.ID).Scan(&githubID); err != nil {
				t.Fatal(err)
			}
			if githubID != f.sim.AddUser("octocat") {
				t.Fatalf("user stored with github_id %d, want the GitHub account's id", githubID)
			}
		})
	}
}

func TestSignIn_SecondSignInUpdatesTheSameUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.signIn("octocat")
	f.signIn("octocat")
	var users, sessions int
	if err := f.st.DB().QueryRow(`SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)`).Scan(&users, &sessions); err != nil {
		t.Fatal(err)
	}
	if users != 1 || sessions != 2 {
		t.Fatalf("users=%d sessions=%d; want one user with two sessions", users, sessions)
	}
}

func TestSignIn_NextIsKeptOnlyForLocalPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.authorizing("octocat")
	tests := []struct {
		next, wantPath string
	}{
		{"/projects/3", "/projects/3"},
		{"https://evil.example/phish", "/"},
		{"//evil.example/phish", "/"},
		{"/\\evil.example", "/"},
		{"projects", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			c := f.browser()
			resp := f.get(c, "/auth/github/login?next="+url.QueryEscape(tt.next))
			if resp.Request.URL.Host != strings.TrimPrefix(f.srv.URL, "http://") || resp.Request.URL.Path != tt.wantPath {
				t.Fatalf("sign-in with next=%q landed on %s, want path %s here", tt.next, resp.Request.URL, tt.wantPath)
			}
		})
	}
}

func TestCallback_StateNotFromThisBrowserIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.authorizing("octocat")

	tests := []struct {
		name    string
		request func(c *http.Client, back *url.URL) *http.Response
	}{
		{"state changed", func(c *http.Client, back *url.URL) *http.Response {
			q := back.Query()
			q.Set("state", q.Get("state")+"x")
			return f.get(c, "/auth/github/callback?"+q.Encode())
		}},
		{"state missing", func(c *http.Client, back *url.URL) *http.Response {
			q := back.Query()
			q.Del("state")
			return f.get(c, "/auth/github/callback?"+q.Encode())
		}},
		{"another browser", func(_ *http.Client, back *url.URL) *http.Response {
			return f.get(f.browser(), "/auth/github/callback?"+back.RawQuery)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.browser()
			back := f.startLogin(c)
			resp := tt.request(c, back)
			apptest.WantPage(t, resp, http.StatusBadRequest, "Start again", "refused callback")
			if n := f.countSessions(); n != 0 {
				t.Fatalf("%d sessions after a refused callback", n)
			}
			if ck := f.sessionCookie(c); ck != "" {
				t.Fatal("a refused callback set a session cookie")
			}
		})
	}
}

func TestCallback_StateIsCheckedBeforeTheCodeIsSpent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	victim, back := f.octocatAtCallback()
	// An attacker's browser presenting the victim's callback URL is refused without using the code…
	if resp := f.get(f.browser(), back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign browser: %d, want 400", resp.StatusCode)
	}
	// …so the victim's own browser still finishes.
	resp := f.get(victim, back.String())
	if resp.StatusCode != http.StatusOK || f.sessionCookie(victim) == "" {
		t.Fatalf("victim's callback: %d, cookie %q", resp.StatusCode, f.sessionCookie(victim))
	}
}

func TestCallback_ReusedCodeIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	c, first := f.octocatAtCallback()
	if resp := f.get(c, first.String()); resp.StatusCode != http.StatusOK {
		t.Fatalf("first callback: %d %s", resp.StatusCode, apptest.ReadBody(t, resp))
	}
	// A new sign-in in the same browser, finished with the old code.
	second := f.startLogin(c)
	q := second.Query()
	q.Set("code", first.Query().Get("code"))
	resp := f.get(c, "/auth/github/callback?"+q.Encode())
	apptest.WantPage(t, resp, http.StatusBadRequest, "already used or has expired", "reused code")
	if n := f.countSessions(); n != 1 {
		t.Fatalf("%d sessions, want only the first", n)
	}
}

func TestCallback_DeniedOnGitHubSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.sim.SetAuthorizeAs("") // the person clicks Cancel
	resp := f.get(f.browser(), "/auth/github/login")
	apptest.WantPage(t, resp, http.StatusForbidden, "did not authorize", "denied sign-in")
	if n := f.countSessions(); n != 0 {
		t.Fatalf("%d sessions after a denial", n)
	}
}

func TestLogin_WithoutAppPointsToSetup(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{noApp: true})
	resp := f.get(f.browser(), "/auth/github/login")
	apptest.WantPage(t, resp, http.StatusServiceUnavailable, `href="/setup"`, "login without an App")
}

func TestLogout_RevokesTheSessionAndIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	c := f.signIn("octocat")
	cookie := f.sessionCookie(c)
	origin := http.Header{"Origin": {f.publicURL}}

	resp := f.do(c, http.MethodPost, "/auth/logout", origin)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if f.sessionCookie(c) != "" {
		t.Fatal("logout left the cookie in the browser")
	}
	var revoked bool
	if err := f.st.DB().QueryRow(`SELECT revoked_at IS NOT NULL FROM sessions`).Scan(&revoked); err != nil || !revoked {
		t.Fatalf("session revoked=%v (%v)", revoked, err)
	}
	// The old cookie, kept by someone, no longer works.
	replay := f.browser()
	u, _ := url.Parse(f.srv.URL)
	replay.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: cookie}})
	if resp := f.get(replay, "/api/me"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked cookie: /api/me %d, want 401", resp.StatusCode)
	}
	// Again, and with the revoked cookie, and with none: still 204.
	for _, cl := range []*http.Client{c, replay, f.browser()} {
		if resp := f.do(cl, http.MethodPost, "/auth/logout", origin); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("repeated logout: %d", resp.StatusCode)
		}
	}
}

func TestRequireUser_RefusesWithout401(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	c := f.signIn("octocat")
	if resp := f.get(c, "/api/me"); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	u, _ := url.Parse(f.srv.URL)
	garbage := f.browser()
	garbage.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: "not-a-session"}})
	unknown := f.browser()
	unknown.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: base64.RawURLEncoding.EncodeToString(make([]byte, 32))}})

	tests := []struct {
		name   string
		client *http.Client
		before func()
	}{
		{"no cookie", f.browser(), func() {}},
		{"malformed cookie", garbage, func() {}},
		{"unknown session", unknown, func() {}},
		{"expired session", c, func() { f.clock.Advance(14*24*time.Hour + time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.before()
			resp := f.get(tt.client, "/api/me")
			var body struct{ Message string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusUnauthorized || body.Message != "sign in first" {
				t.Fatalf("/api/me: %d %q; want 401 \"sign in first\"", resp.StatusCode, body.Message)
			}
		})
	}
}

func TestSameOrigin_RefusesCrossSiteStateChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	signedIn := f.signIn("octocat")
	portless := strings.Split(f.publicURL, ":")[0] + ":" + strings.Split(f.publicURL, ":")[1]
	tests := []struct {
		name   string
		method string
		header http.Header
		anon   bool
		want   int
	}{
		{"same origin", http.MethodPost, http.Header{"Origin": {f.publicURL}}, false, http.StatusNoContent},
		{"same origin, upper-case host", http.MethodPost, http.Header{"Origin": {strings.ToUpper(f.publicURL[:4]) + f.publicURL[4:]}}, false, http.StatusNoContent},
		{"other origin", http.MethodPost, http.Header{"Origin": {"https://evil.example"}}, false, http.StatusForbidden},
		{"other port", http.MethodPost, http.Header{"Origin": {portless + ":1"}}, false, http.StatusForbidden},
		{"other scheme", http.MethodPost, http.Header{"Origin": {strings.Replace(f.publicURL, "http://", "https://", 1)}}, false, http.StatusForbidden},
		{"opaque origin", http.MethodDelete, http.Header{"Origin": {"null"}}, false, http.StatusForbidden},
		{"origin wins over fetch metadata", http.MethodPost, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"same-origin"}}, false, http.StatusForbidden},
		{"fetch metadata cross-site", http.MethodPut, http.Header{"Sec-Fetch-Site": {"cross-site"}}, false, http.StatusForbidden},
		{"fetch metadata same-site", http.MethodPatch, http.Header{"Sec-Fetch-Site": {"same-site"}}, false, http.StatusForbidden},
		{"fetch metadata same-origin", http.MethodPost, http.Header{"Sec-Fetch-Site": {"same-origin"}}, false, http.StatusNoContent},
		{"referer elsewhere", http.MethodPost, http.Header{"Referer": {"https://evil.example/page"}}, false, http.StatusForbidden},
		{"referer here", http.MethodPost, http.Header{"Referer": {f.publicURL + "/projects"}}, false, http.StatusNoContent},
		{"no provenance with a session cookie", http.MethodPost, nil, false, http.StatusForbidden},
		{"no provenance, no cookie: reaches sign-in check", http.MethodPost, nil, true, http.StatusUnauthorized},
		{"reads are not checked", http.MethodGet, http.Header{"Origin": {"https://evil.example"}}, false, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := signedIn
			if tt.anon {
				c = f.browser()
			}
			path := "/api/things"
			if tt.method == http.MethodGet {
				path = "/api/me"
			}
			resp := f.do(c, tt.method, path, tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: %d, want %d (%s)", tt.method, path, resp.StatusCode, tt.want, apptest.ReadBody(t, resp))
			}
			if tt.want == http.StatusForbidden {
				var body struct{ Message string }
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body.Message, "cross-site") {
					t.Fatalf("403 body %q (%v)", body.Message, err)
				}
			}
		})
	}
}

func TestGitHubToken_RenewedWhenItExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	c := f.signIn("octocat")
	check := func() {
		t.Helper()
		resp := f.get(c, "/api/github-user")
		var body struct{ Login string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusOK || body.Login != "octocat" {
			t.Fatalf("GitHub /user with the session's token: %d %q", resp.StatusCode, body.Login)
		}
	}
	check()
	before := sessionToken(t, f)
	f.clock.Advance(9 * time.Hour) // GitHub user tokens last 8 hours
	check()
	after := sessionToken(t, f)
	if after == before {
		t.Fatal("the token was not renewed")
	}
	if n := len(f.sim.CallsMatching(http.MethodPost, "/login/oauth/access_token")); n != 2 {
		t.Fatalf("%d token requests, want the sign-in and one renewal", n)
	}
	check() // the renewed token is kept, not renewed again
	if n := len(f.sim.CallsMatching(http.MethodPost, "/login/oauth/access_token")); n != 2 {
		t.Fatalf("%d token requests after another call, want 2", n)
	}
}

func TestGitHubToken_NeverLeavesTheServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	c := f.signIn("octocat")
	f.get(c, "/api/me")
	f.get(c, "/api/github-user")
	f.do(c, http.MethodPost, "/auth/logout", http.Header{"Origin": {f.publicURL}})

	tok := sessionToken(t, f)
	if !strings.HasPrefix(tok, "ghu_") {
		t.Fatalf("sealed token (%d chars) is not a user token", len(tok))
	}
	if len(f.sim.CallsWith(githubsim.CredentialUser)) == 0 {
		t.Fatal("the token was never used")
	}
	if strings.Contains(f.logs.String(), tok) {
		t.Fatal("the GitHub token is in the server log")
	}
	for _, r := range f.rec.seen.All() {
		if bytes.Contains(r.body, []byte(tok)) || strings.Contains(strings.Join(headerLines(r.header), "\n"), tok) {
			t.Fatalf("the GitHub token is in the response from %s", r.url)
		}
	}
	if strings.Contains(dumpDatabase(t, f), tok) {
		t.Fatal("the GitHub token is stored in the clear")
	}
}

// sessionToken opens the one session's sealed GitHub token with the server's key.
func sessionToken(t *testing.T, f *fixture) string {
	t.Helper()
	var hash, ct, nonce []byte
	var keyID string
	if err := f.st.DB().QueryRow(`SELECT id_hash, github_token_encrypted, github_token_nonce, github_token_key_id FROM sessions`).Scan(&hash, &ct, &nonce, &keyID); err != nil {
		t.Fatal(err)
	}
	plain, err := f.keys.Open(seal.Sealed{Ciphertext: ct, Nonce: nonce, KeyID: keyID}, seal.SessionTokenAD(hash))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(plain, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.AccessToken
}

// dumpDatabase renders every row of the tables auth writes as text.
func dumpDatabase(t *testing.T, f *fixture) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"users", "sessions", "audit_log"} {
		rows, err := f.st.DB().Query(`SELECT t::text FROM ` + table + ` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

func headerLines(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

func TestRun_PrunesSessionsEndedMoreThanADayAgo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.signIn("octocat")                                                                    // expires in 14 days
	loggedOut := f.signIn("hubot")                                                         // revoked now
	f.do(loggedOut, http.MethodPost, "/auth/logout", http.Header{"Origin": {f.publicURL}}) //
	f.clock.Advance(2 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.auth.Run(ctx) }()
	waittest.Until(t, time.Minute, "Run to prune the logged-out session and keep the live one",
		func() bool { return f.countSessions() == 1 })
	cancel()
	waittest.Returned(t, done, time.Minute, "Run")
	if n := f.countSessions(); n != 1 {
		t.Fatalf("%d sessions left, want the live one", n)
	}
	f.clock.Advance(13*24*time.Hour + time.Minute) // the live one ended over a day ago
	if n, err := f.auth.PruneSessions(context.Background()); err != nil || n != 1 {
		t.Fatalf("PruneSessions = %d, %v; want 1", n, err)
	}
}
