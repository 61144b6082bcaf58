package hub

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/store"
)

// Messages of refused handshakes. An unknown agent and a wrong secret get the same one, so
// the answer does not tell a guesser which agent ids exist.
const (
	msgMissingToken   = "missing agent token: send Authorization: Bearer <token>"
	msgMalformedToken = "malformed agent token: want stg_<agent id>_<secret>"
	msgInvalidToken   = "invalid agent token"
	msgUnavailable    = "cannot check the agent token right now; retry later"
	msgShuttingDown   = "server shutting down"
	msgMethod         = "use GET to open the agent WebSocket"
)

// httpError is a refusal answered before the upgrade.
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string { return e.message }

// writeJSONError answers with the project's error shape.
func writeJSONError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{message})
}

// authenticate checks the bearer token and returns the agent id it belongs to. The token
// is never logged; only the agent id part is.
func (h *Hub) authenticate(ctx context.Context, header string) (int64, error) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return 0, &httpError{http.StatusUnauthorized, msgMissingToken}
	}
	token = strings.TrimSpace(token)
	agentID, err := agenttoken.AgentID(token)
	if err != nil {
		return 0, &httpError{http.StatusUnauthorized, msgMalformedToken}
	}
	agent, err := h.opts.Store.AgentByID(ctx, agentID)
	if errors.Is(err, store.ErrNotFound) {
		h.log.Info("agent refused: unknown agent", "agent_id", agentID)
		return 0, &httpError{http.StatusUnauthorized, msgInvalidToken}
	}
	if err != nil {
		h.log.Error("agent refused: look up agent", "agent_id", agentID, "err", err)
		return 0, &httpError{http.StatusServiceUnavailable, msgUnavailable}
	}
	key := sha256.Sum256([]byte(token))
	now := h.opts.Now()
	if h.cache.valid(key, agentID, agent.TokenHash, now) {
		return agentID, nil
	}
	if err := h.opts.VerifyToken(token, agent.TokenHash); err != nil {
		h.log.Info("agent refused: token does not match", "agent_id", agentID)
		return 0, &httpError{http.StatusUnauthorized, msgInvalidToken}
	}
	h.cache.put(key, agentID, agent.TokenHash, now)
	return agentID, nil
}

// tokenCache remembers tokens that passed bcrypt, so a reconnect storm (every agent
// redialling after a server restart) costs a map lookup per agent, not 50ms of CPU. Entries
// are keyed by the token's SHA-256 (the token itself is not kept) and hold the agent's
// token_hash at verification: a rotated token no longer matches the row and is refused at
// once, whatever the TTL.
type tokenCache struct {
	max int
	ttl time.Duration

	mu sync.Mutex
	m  map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	agentID int64
	hash    string
	expires time.Time
}

func newTokenCache(maxEntries int, ttl time.Duration) *tokenCache {
	return &tokenCache{max: maxEntries, ttl: ttl, m: map[[sha256.Size]byte]cacheEntry{}}
}

// valid reports whether key was verified for this agent against the hash it has now.
func (c *tokenCache) valid(key [sha256.Size]byte, agentID int64, hash string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return false
	}
	if !now.Before(e.expires) || e.agentID != agentID || e.hash != hash {
		delete(c.m, key)
		return false
	}
	return true
}

// put records a verified token; when full it drops expired entries, then arbitrary ones
// (a dropped entry only costs one bcrypt later).
func (c *tokenCache) put(key [sha256.Size]byte, agentID int64, hash string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cacheEntry{agentID: agentID, hash: hash, expires: now.Add(c.ttl)}
}

// forgetAgent drops every entry of the agent.
func (c *tokenCache) forgetAgent(agentID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.agentID == agentID {
			delete(c.m, k)
		}
	}
}

// len is the number of cached tokens.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
