// Package auth signs people in to the dashboard with GitHub (the App's OAuth web flow) and keeps
// them signed in with server-side sessions. It provides the routes under /auth, the RequireUser
// and SameOrigin middleware the JSON API relies on, and CurrentUser/GitHubToken for handlers.
// The rules (cookies, CSRF, expiry) are written down in docs/auth.md.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/store"
)

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 14 * 24 * time.Hour

// Cookie names.
const (
	SessionCookie = "stagely_session"
	stateCookie   = "stagely_oauth_state"
)

// stateTTL bounds an unfinished sign-in; GitHub's code itself lasts 10 minutes.
const stateTTL = 10 * time.Minute

// Store is the part of the database auth uses.
type Store interface {
	UpsertUser(ctx context.Context, u store.User) (store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	CreateSession(ctx context.Context, sess store.Session) error
	ActiveSession(ctx context.Context, idHash []byte, now time.Time) (store.Session, error)
	RevokeSession(ctx context.Context, idHash []byte, at time.Time) error
	ResealSessionToken(ctx context.Context, idHash, ciphertext, nonce []byte, keyID string) error
	DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error)
}

var _ Store = (*store.Store)(nil)

// Credentials gives the App's current OAuth client credentials (appcreds.Provider does).
type Credentials interface {
	Current(ctx context.Context) (appcreds.Credentials, bool, error)
}

// GitHub is the OAuth web flow and the one user call sign-in needs (github.Client does).
type GitHub interface {
	AuthorizeURL(clientID, redirectURI, state string) string
	ExchangeCode(ctx context.Context, oc github.OAuthClient, code, redirectURI string) (github.UserToken, error)
	RefreshUserToken(ctx context.Context, oc github.OAuthClient, refreshToken string) (github.UserToken, error)
	UserProfile(ctx context.Context, token string) (github.Profile, error)
}

// Options are Auth's dependencies.
type Options struct {
	Store  Store
	Keys   *seal.Keyring
	Creds  Credentials
	GitHub GitHub
	// PublicURL is where browsers reach this server; it decides the callback URL, the origin
	// accepted by SameOrigin and whether cookies are Secure.
	PublicURL string
	Now       func() time.Time
	// SessionTTL is how long a sign-in lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Auth is the sign-in flow, the session store and the middleware built on it.
type Auth struct {
	st        Store
	keys      *seal.Keyring
	creds     Credentials
	github    GitHub
	publicURL string
	origin    string // scheme://host[:port] of publicURL
	secure    bool
	now       func() time.Time
	ttl       time.Duration
	log       *slog.Logger

	// refreshMu serialises token refreshes: GitHub's refresh tokens work once, so two requests
	// of one session refreshing at the same time would sign the loser out.
	refreshMu sync.Mutex
}

// New checks the options and builds an Auth.
func New(o Options) (*Auth, error) {
	if o.Store == nil || o.Keys == nil || o.Creds == nil || o.GitHub == nil {
		return nil, errors.New("auth: Store, Keys, Creds and GitHub are required")
	}
	pub, err := parseBase("public URL", o.PublicURL)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Auth{
		st: o.Store, keys: o.Keys, creds: o.Creds, github: o.GitHub,
		publicURL: strings.TrimRight(pub.String(), "/"),
		origin:    originOf(pub),
		secure:    pub.Scheme == "https",
		now:       o.Now, ttl: o.SessionTTL, log: o.Logger,
	}, nil
}

// Register mounts GET /auth/github/login, GET /auth/github/callback and POST /auth/logout.
func (a *Auth) Register(r gin.IRouter) {
	r.GET("/auth/github/login", a.login)
	r.GET("/auth/github/callback", a.callback)
	r.POST("/auth/logout", a.SameOrigin(), a.logout)
}

// callbackURL is the redirect_uri registered in app-manifest.yml.
func (a *Auth) callbackURL() string { return a.publicURL + "/auth/github/callback" }

func parseBase(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: %s %q is not an http(s) URL with a host", what, raw)
	}
	return u, nil
}

// originOf is the browser's Origin for u: lower-case scheme and host, default port dropped.
func originOf(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}
