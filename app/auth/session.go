package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// sessionIDSize is the session id's length in random bytes.
const sessionIDSize = 32

// ctxKey keys the signed-in session in gin's per-request Keys.
type ctxKey struct{}

// userToken is the GitHub user token sealed into the session row. GitHub App user tokens last
// 8 hours, sessions 14 days: the refresh token lets GitHubToken renew it without a new sign-in.
type userToken struct {
	AccessToken      string    `json:"access_token"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
}

// requestSession is the signed-in session of one request; the token is opened only when asked.
type requestSession struct {
	a    *Auth
	sess store.Session
	user store.User

	once  sync.Once
	token string
	ok    bool
}

// CurrentUser returns the signed-in user of a request that passed RequireUser.
func CurrentUser(c *gin.Context) (store.User, bool) {
	rs, ok := sessionOf(c)
	if !ok {
		return store.User{}, false
	}
	return rs.user, true
}

// GitHubToken returns the signed-in user's GitHub token, renewed if it has expired. It is false
// when the session holds no usable token; the user has to sign in again then.
func GitHubToken(c *gin.Context) (string, bool) {
	rs, ok := sessionOf(c)
	if !ok {
		return "", false
	}
	rs.once.Do(func() {
		tok, err := rs.a.openToken(c.Request.Context(), rs.sess)
		if err != nil {
			rs.a.log.Warn("GitHub token of session unusable", "user_id", rs.sess.UserID, "err", err)
			return
		}
		rs.token, rs.ok = tok, true
	})
	return rs.token, rs.ok
}

func sessionOf(c *gin.Context) (*requestSession, bool) {
	v, ok := c.Get(ctxKey{})
	if !ok {
		return nil, false
	}
	rs, ok := v.(*requestSession)
	return rs, ok
}

// RequireUser answers 401 unless the request carries a live session cookie.
func (a *Auth) RequireUser() gin.HandlerFunc {
	return func(c *gin.Context) {
		hash, ok := sessionHash(c.Request)
		if !ok {
			abortJSON(c, http.StatusUnauthorized, "sign in first")
			return
		}
		sess, err := a.st.ActiveSession(c.Request.Context(), hash, a.now())
		if store.IsNotFound(err) {
			a.clearCookie(c.Writer, SessionCookie, "/")
			abortJSON(c, http.StatusUnauthorized, "sign in first")
			return
		}
		if err != nil {
			a.log.Error("look up session", "err", err)
			abortJSON(c, http.StatusInternalServerError, "internal error")
			return
		}
		user, err := a.st.UserByID(c.Request.Context(), sess.UserID)
		if err != nil {
			a.log.Error("look up user of session", "user_id", sess.UserID, "err", err)
			abortJSON(c, http.StatusInternalServerError, "internal error")
			return
		}
		c.Set(ctxKey{}, &requestSession{a: a, sess: sess, user: user})
		c.Next()
	}
}

// logout revokes the session of the cookie, if any, and clears the cookie. It always answers 204.
func (a *Auth) logout(c *gin.Context) {
	if hash, ok := sessionHash(c.Request); ok {
		err := a.st.RevokeSession(c.Request.Context(), hash, a.now())
		if err != nil && !store.IsNotFound(err) {
			a.log.Error("revoke session", "err", err)
			abortJSON(c, http.StatusInternalServerError, "internal error")
			return
		}
	}
	a.clearCookie(c.Writer, SessionCookie, "/")
	c.Status(http.StatusNoContent)
}

// startSession stores a new session for user holding tok (sealed) and sets its cookie.
func (a *Auth) startSession(ctx context.Context, w http.ResponseWriter, userID int64, tok userToken) error {
	id := make([]byte, sessionIDSize)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("draw session id: %w", err)
	}
	hash := sha256.Sum256(id)
	sealed, err := a.sealToken(hash[:], tok)
	if err != nil {
		return err
	}
	keyID := sealed.KeyID
	err = a.st.CreateSession(ctx, store.Session{
		IDHash: hash[:], UserID: userID,
		GitHubTokenEncrypted: sealed.Ciphertext, GitHubTokenNonce: sealed.Nonce,
		GitHubTokenKeyID: sql.NullString{String: keyID, Valid: true}, ExpiresAt: a.now().Add(a.ttl),
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: base64.RawURLEncoding.EncodeToString(id), Path: "/",
		MaxAge: int(a.ttl / time.Second), HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

func (a *Auth) sealToken(idHash []byte, tok userToken) (seal.Sealed, error) {
	plain, err := json.Marshal(tok)
	if err != nil {
		return seal.Sealed{}, fmt.Errorf("encode GitHub token: %w", err)
	}
	defer clear(plain)
	sealed, err := a.keys.Seal(plain, seal.SessionTokenAD(idHash))
	if err != nil {
		return seal.Sealed{}, fmt.Errorf("seal GitHub token: %w", err)
	}
	return sealed, nil
}

func (a *Auth) unsealToken(sess store.Session) (userToken, error) {
	if sess.GitHubTokenEncrypted == nil {
		return userToken{}, fmt.Errorf("session holds no GitHub token")
	}
	plain, err := a.keys.Open(seal.Sealed{
		Ciphertext: sess.GitHubTokenEncrypted, Nonce: sess.GitHubTokenNonce, KeyID: sess.GitHubTokenKeyID.String,
	}, seal.SessionTokenAD(sess.IDHash))
	if err != nil {
		return userToken{}, fmt.Errorf("open GitHub token: %w", err)
	}
	defer clear(plain)
	var tok userToken
	if err := json.Unmarshal(plain, &tok); err != nil {
		return userToken{}, fmt.Errorf("decode GitHub token: %w", err)
	}
	return tok, nil
}

// tokenMargin renews a token this long before GitHub would refuse it, so a request that starts
// with a valid token does not fail half-way.
const tokenMargin = time.Minute

// openToken returns the session's access token, renewing it first when it is about to expire.
func (a *Auth) openToken(ctx context.Context, sess store.Session) (string, error) {
	tok, err := a.unsealToken(sess)
	if err != nil {
		return "", err
	}
	if !a.expiring(tok) {
		return tok.AccessToken, nil
	}
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	// Another request of this session may have renewed it while this one waited.
	fresh, err := a.st.ActiveSession(ctx, sess.IDHash, a.now())
	if err != nil {
		return "", fmt.Errorf("reread session: %w", err)
	}
	if tok, err = a.unsealToken(fresh); err != nil {
		return "", err
	}
	if !a.expiring(tok) {
		return tok.AccessToken, nil
	}
	if tok.RefreshToken == "" || (!tok.RefreshExpiresAt.IsZero() && !a.now().Before(tok.RefreshExpiresAt)) {
		return "", fmt.Errorf("GitHub token expired and cannot be renewed")
	}
	renewed, err := a.refresh(ctx, tok.RefreshToken)
	if err != nil {
		return "", err
	}
	sealed, err := a.sealToken(sess.IDHash, renewed)
	if err != nil {
		return "", err
	}
	if err := a.st.ResealSessionToken(ctx, sess.IDHash, sealed.Ciphertext, sealed.Nonce, sealed.KeyID); err != nil {
		return "", fmt.Errorf("save renewed GitHub token: %w", err)
	}
	return renewed.AccessToken, nil
}

func (a *Auth) expiring(tok userToken) bool {
	return !tok.ExpiresAt.IsZero() && !a.now().Add(tokenMargin).Before(tok.ExpiresAt)
}

// sessionHash reads the session cookie; a malformed value is treated as no cookie.
func sessionHash(r *http.Request) ([]byte, bool) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, false
	}
	id, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(id) != sessionIDSize {
		return nil, false
	}
	h := sha256.Sum256(id)
	return h[:], true
}

func (a *Auth) clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
}

func abortJSON(c *gin.Context, status int, message string) {
	c.AbortWithStatusJSON(status, gin.H{"message": message})
}
