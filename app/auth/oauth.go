package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/config"
	"github.com/stagely/stagely/store"
)

// maxGitHubBody bounds what we read from GitHub's OAuth and /user answers.
const maxGitHubBody = 1 << 20

// login starts the OAuth web flow: a random state bound to this browser by a short-lived
// cookie, then GitHub's authorize page.
func (a *Auth) login(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	creds, ok := a.clientCredentials(c)
	if !ok {
		return
	}
	state, err := randomString(32)
	if err != nil {
		a.log.Error("draw OAuth state", "err", err)
		renderPage(c, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "Stagely could not start the sign-in. Try again."})
		return
	}
	next := safeNext(c.Query("next"))
	http.SetCookie(c.Writer, &http.Cookie{
		Name: stateCookie, Value: state + "." + base64.RawURLEncoding.EncodeToString([]byte(next)),
		Path: "/auth/github", MaxAge: int(stateTTL / time.Second),
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
	q := url.Values{"client_id": {creds.ClientID}, "redirect_uri": {a.callbackURL()}, "state": {state}}
	c.Redirect(http.StatusFound, a.githubURL+"/login/oauth/authorize?"+q.Encode())
}

// callback finishes the flow: state check, code exchange, GET /user, user upsert, new session.
func (a *Auth) callback(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	ctx := c.Request.Context()
	ck, cookieErr := c.Request.Cookie(stateCookie)
	// The state works once, whatever happens next.
	a.clearCookie(c.Writer, stateCookie, "/auth/github")
	if cookieErr != nil {
		renderPage(c, http.StatusBadRequest, startAgain("This sign-in was started in another browser or took longer than 10 minutes."))
		return
	}
	want, next := splitState(ck.Value)
	got := c.Query("state")
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		renderPage(c, http.StatusBadRequest, startAgain("The sign-in answer from GitHub does not belong to the sign-in this browser started."))
		return
	}
	if e := c.Query("error"); e != "" {
		a.log.Info("sign-in refused at GitHub", "error", e)
		status, pg := authorizeErrorPage(e, a.callbackURL())
		renderPage(c, status, pg)
		return
	}
	code := c.Query("code")
	if code == "" {
		renderPage(c, http.StatusBadRequest, startAgain("GitHub's answer carried no code."))
		return
	}
	creds, ok := a.clientCredentials(c)
	if !ok {
		return
	}
	tok, err := a.exchange(ctx, creds, url.Values{"code": {code}, "redirect_uri": {a.callbackURL()}})
	if err != nil {
		a.log.Warn("exchange OAuth code", "err", err)
		status, pg := exchangeErrorPage(err, a.callbackURL())
		renderPage(c, status, pg)
		return
	}
	profile, err := a.fetchUser(ctx, tok.AccessToken)
	if err != nil {
		a.log.Warn("read GitHub user", "err", err)
		renderPage(c, http.StatusBadGateway, page{Title: "Sign-in failed", Message: "GitHub did not tell Stagely who you are. Try again in a moment.", LinkURL: "/auth/github/login", LinkText: "Sign in again"})
		return
	}
	user, err := a.st.UpsertUser(ctx, profile)
	if err != nil {
		a.log.Error("save user", "github_id", profile.GitHubID, "err", err)
		renderPage(c, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "Stagely could not save your account. Try again."})
		return
	}
	// A session this browser already had ends here, so an id planted before sign-in is worthless.
	if old, ok := sessionHash(c.Request); ok {
		if err := a.st.RevokeSession(ctx, old, a.now()); err != nil && !store.IsNotFound(err) {
			a.log.Warn("revoke previous session", "err", err)
		}
	}
	if err := a.startSession(ctx, c.Writer, user.ID, tok); err != nil {
		a.log.Error("start session", "user_id", user.ID, "err", err)
		renderPage(c, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "Stagely could not start your session. Try again."})
		return
	}
	a.log.Info("signed in", "user_id", user.ID, "login", user.Login)
	c.Redirect(http.StatusFound, next)
}

// clientCredentials returns the App's OAuth client, or answers with a page saying what is missing.
func (a *Auth) clientCredentials(c *gin.Context) (config.AppCredentials, bool) {
	creds, ok, err := a.creds.Current(c.Request.Context())
	switch {
	case err != nil:
		a.log.Error("read GitHub App credentials", "err", err)
		renderPage(c, http.StatusInternalServerError, page{Title: "Sign-in unavailable", Message: "Stagely could not read its GitHub App credentials. The server log says why."})
		return creds, false
	case !ok:
		renderPage(c, http.StatusServiceUnavailable, page{Title: "No GitHub App yet", Message: "Sign-in goes through Stagely's GitHub App, and none is configured. Create it first.", LinkURL: "/setup", LinkText: "Set up the GitHub App"})
		return creds, false
	case creds.ClientID == "" || creds.ClientSecret == "":
		renderPage(c, http.StatusServiceUnavailable, page{Title: "Sign-in unavailable", Message: "The GitHub App's OAuth client is not configured: set STAGELY_GITHUB_CLIENT_ID and STAGELY_GITHUB_CLIENT_SECRET from the App's settings page."})
		return creds, false
	}
	return creds, true
}

// oauthError is GitHub's refusal of a code or refresh token (sent with HTTP 200).
type oauthError struct {
	Code        string
	Description string
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("GitHub refused: %s (%s)", e.Code, e.Description)
}

// tokenResponse is GitHub's answer at /login/oauth/access_token with Accept: application/json.
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	TokenType             string `json:"token_type"`
	Error                 string `json:"error"`
	ErrorDescription      string `json:"error_description"`
}

// exchange posts params (a code, or a refresh token) with the client credentials for a user token.
func (a *Auth) exchange(ctx context.Context, creds config.AppCredentials, params url.Values) (userToken, error) {
	params.Set("client_id", creds.ClientID)
	params.Set("client_secret", creds.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.githubURL+"/login/oauth/access_token", strings.NewReader(params.Encode()))
	if err != nil {
		return userToken{}, fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return userToken{}, fmt.Errorf("post to GitHub's token endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return userToken{}, fmt.Errorf("GitHub's token endpoint answered %s", resp.Status)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxGitHubBody)).Decode(&tr); err != nil {
		return userToken{}, fmt.Errorf("decode GitHub's token answer: %w", err)
	}
	if tr.Error != "" {
		return userToken{}, &oauthError{Code: tr.Error, Description: tr.ErrorDescription}
	}
	if tr.AccessToken == "" {
		return userToken{}, errors.New("GitHub's token answer holds no access_token")
	}
	now := a.now()
	tok := userToken{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken}
	if tr.ExpiresIn > 0 {
		tok.ExpiresAt = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if tr.RefreshTokenExpiresIn > 0 {
		tok.RefreshExpiresAt = now.Add(time.Duration(tr.RefreshTokenExpiresIn) * time.Second)
	}
	return tok, nil
}

// refresh renews an expired user token with its refresh token.
func (a *Auth) refresh(ctx context.Context, refreshToken string) (userToken, error) {
	creds, ok, err := a.creds.Current(ctx)
	if err != nil {
		return userToken{}, fmt.Errorf("read GitHub App credentials: %w", err)
	}
	if !ok || creds.ClientID == "" {
		return userToken{}, errors.New("no GitHub App OAuth client is configured")
	}
	tok, err := a.exchange(ctx, creds, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		return userToken{}, fmt.Errorf("renew GitHub token: %w", err)
	}
	return tok, nil
}

// fetchUser reads the token's owner from GET /user.
func (a *Auth) fetchUser(ctx context.Context, token string) (store.User, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.apiURL+"/user", nil)
	if err != nil {
		return store.User{}, fmt.Errorf("build /user request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := a.client.Do(req)
	if err != nil {
		return store.User{}, fmt.Errorf("get /user: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return store.User{}, fmt.Errorf("get /user: GitHub answered %s", resp.Status)
	}
	var u struct {
		ID        int64  `json:"id"`
		Login     string `json:"login"`
		Name      string `json:"name"`
		Email     string `json:"email"`
		AvatarURL string `json:"avatar_url"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxGitHubBody)).Decode(&u); err != nil {
		return store.User{}, fmt.Errorf("decode /user: %w", err)
	}
	if u.ID == 0 || u.Login == "" {
		return store.User{}, errors.New("/user answer has no id or login")
	}
	return store.User{GitHubID: u.ID, Login: u.Login, Name: u.Name, Email: u.Email, AvatarURL: u.AvatarURL}, nil
}

// safeNext keeps only same-site relative paths, so the sign-in cannot become an open redirect.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// splitState parses the state cookie: "<state>.<base64url(next)>".
func splitState(v string) (state, next string) {
	state, enc, _ := strings.Cut(v, ".")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return state, "/"
	}
	return state, safeNext(string(b))
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func startAgain(why string) page {
	return page{Title: "Sign-in could not be finished", Message: why + " Start again.", LinkURL: "/auth/github/login", LinkText: "Sign in with GitHub"}
}

// authorizeErrorPage explains an error GitHub sent back instead of a code.
func authorizeErrorPage(code, callback string) (int, page) {
	switch code {
	case "access_denied":
		return http.StatusForbidden, page{Title: "Sign-in cancelled", Message: "You did not authorize Stagely on GitHub. Sign in again when you are ready.", LinkURL: "/auth/github/login", LinkText: "Sign in with GitHub"}
	case "redirect_uri_mismatch":
		return http.StatusBadGateway, page{Title: "Sign-in misconfigured", Message: "GitHub does not know this server's callback URL " + callback + ". Add it as a Callback URL in the GitHub App's settings (it follows STAGELY_PUBLIC_URL)."}
	case "application_suspended":
		return http.StatusForbidden, page{Title: "GitHub App suspended", Message: "Stagely's GitHub App is suspended on GitHub, so nobody can sign in with it."}
	}
	return http.StatusBadRequest, startAgain("GitHub refused the sign-in (" + code + ").")
}

// exchangeErrorPage explains why the code exchange failed.
func exchangeErrorPage(err error, callback string) (int, page) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		return http.StatusBadGateway, page{Title: "Sign-in failed", Message: "Stagely could not reach GitHub to finish the sign-in. Try again in a moment.", LinkURL: "/auth/github/login", LinkText: "Sign in again"}
	}
	switch oe.Code {
	case "bad_verification_code":
		return http.StatusBadRequest, startAgain("GitHub did not accept the sign-in code: it was already used or has expired (a code works once, for 10 minutes).")
	case "incorrect_client_credentials":
		return http.StatusBadGateway, page{Title: "Sign-in misconfigured", Message: "GitHub rejected this server's OAuth client id or secret. Check STAGELY_GITHUB_CLIENT_ID and STAGELY_GITHUB_CLIENT_SECRET against the App's settings page."}
	case "redirect_uri_mismatch":
		return http.StatusBadGateway, page{Title: "Sign-in misconfigured", Message: "GitHub does not accept this server's callback URL " + callback + ". Add it as a Callback URL in the GitHub App's settings."}
	case "unverified_user_email":
		return http.StatusForbidden, page{Title: "Sign-in refused", Message: "GitHub requires a verified primary email address on your account before you can sign in."}
	}
	return http.StatusBadGateway, startAgain("GitHub refused the sign-in (" + oe.Code + ").")
}
