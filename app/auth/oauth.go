package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

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
	c.Redirect(http.StatusFound, a.github.AuthorizeURL(creds.ClientID, a.callbackURL(), state))
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
	granted, err := a.github.ExchangeCode(ctx, oauthClient(creds), code, a.callbackURL())
	if err != nil {
		a.log.Warn("exchange OAuth code", "err", err)
		status, pg := exchangeErrorPage(err, a.callbackURL())
		renderPage(c, status, pg)
		return
	}
	tok := a.userToken(granted)
	profile, err := a.github.UserProfile(ctx, tok.AccessToken)
	if err != nil {
		a.log.Warn("read GitHub user", "err", err)
		renderPage(c, http.StatusBadGateway, page{Title: "Sign-in failed", Message: "GitHub did not tell Stagely who you are. Try again in a moment.", LinkURL: "/auth/github/login", LinkText: "Sign in again"})
		return
	}
	user, err := a.st.UpsertUser(ctx, store.User{
		GitHubID: profile.ID, Login: profile.Login, Name: profile.Name, Email: profile.Email, AvatarURL: profile.AvatarURL,
	})
	if err != nil {
		a.log.Error("save user", "github_id", profile.ID, "err", err)
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
func (a *Auth) clientCredentials(c *gin.Context) (appcreds.Credentials, bool) {
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

// oauthClient is the App's OAuth client as app/github takes it.
func oauthClient(creds appcreds.Credentials) github.OAuthClient {
	return github.OAuthClient{ID: creds.ClientID, Secret: creds.ClientSecret}
}

// userToken is what the session keeps of a token GitHub granted: its lifetimes as instants on
// this server's clock.
func (a *Auth) userToken(g github.UserToken) userToken {
	now := a.now()
	tok := userToken{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}
	if g.ExpiresIn > 0 {
		tok.ExpiresAt = now.Add(g.ExpiresIn)
	}
	if g.RefreshTokenExpiresIn > 0 {
		tok.RefreshExpiresAt = now.Add(g.RefreshTokenExpiresIn)
	}
	return tok
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
	granted, err := a.github.RefreshUserToken(ctx, oauthClient(creds), refreshToken)
	if err != nil {
		return userToken{}, err
	}
	return a.userToken(granted), nil
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
	var oe *github.OAuthError
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
