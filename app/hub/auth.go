package hub

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
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
	msgRateLimited    = "too many failed agent handshakes; retry later"
	msgBusy           = "server busy checking agent tokens; retry later"
)

// httpError is a refusal answered before the upgrade.
type httpError struct {
	status  int
	message string
	// retryAfter, when set, is sent as Retry-After (whole seconds, at least 1).
	retryAfter time.Duration
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

// writeRefusal answers a refused handshake or exchange: an httpError as it says, with its
// Retry-After; any other error (the store failing) as fallback, without its text.
func writeRefusal(w http.ResponseWriter, err error, fallback int) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: fallback, message: msgUnavailable}
	}
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(he.retryAfter.Seconds()))))
	}
	writeJSONError(w, he.status, he.message)
}

// bearerToken is the token of an `Authorization: Bearer <token>` header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// authenticate checks the bearer token and returns the agent id it belongs to. The token
// is never logged; only the agent id part is.
//
// A token verified recently (in the cache) costs one indexed read and skips every limit,
// so a reconnect storm of legitimate agents is not slowed. Any other token is refused
// with 429 while its source's bucket or its agent id's bucket is empty, then waits for one
// of the few bcrypt slots (429 when they are all busy and the queue is full). Only a
// failure spends from the buckets, so many agents behind one NAT address are not locked
// out by their own successes, however many connect at once.
func (h *Hub) authenticate(ctx context.Context, header string, src sourceKey) (int64, error) {
	token, ok := bearerToken(header)
	if !ok {
		return 0, &httpError{status: http.StatusUnauthorized, message: msgMissingToken}
	}
	if agenttoken.IsBootstrap(token) {
		return 0, &httpError{status: http.StatusUnauthorized, message: msgBootstrapAtWS}
	}
	agentID, err := agenttoken.AgentID(token)
	if err != nil {
		return 0, &httpError{status: http.StatusUnauthorized, message: msgMalformedToken}
	}
	key := sha256.Sum256([]byte(token))
	now := h.opts.Now()
	cached := h.cache.peek(key, agentID, now)
	if !cached {
		if err := h.allowAttempt(src, agentID, now); err != nil {
			return 0, err
		}
	}
	agent, err := h.opts.Store.AgentByID(ctx, agentID)
	if errors.Is(err, store.ErrNotFound) {
		h.log.Info("agent refused: unknown agent", "agent_id", agentID, "source", src.String())
		h.chargeFailure(src, agentID)
		return 0, &httpError{status: http.StatusUnauthorized, message: msgInvalidToken}
	}
	if err != nil {
		h.log.Error("agent refused: look up agent", "agent_id", agentID, "err", err)
		return 0, &httpError{status: http.StatusServiceUnavailable, message: msgUnavailable}
	}
	if agent.TokenHash == "" {
		// Waiting for its first connection: only the bootstrap exchange gives it a token.
		h.log.Info("agent refused: no long-lived token yet", "agent_id", agentID, "source", src.String())
		h.chargeFailure(src, agentID)
		return 0, &httpError{status: http.StatusUnauthorized, message: msgInvalidToken}
	}
	if h.cache.valid(key, agentID, agent.TokenHash, now) {
		return agentID, nil
	}
	if cached {
		// The cached hash is stale (a rotated token): this attempt is limited like any other.
		if err := h.allowAttempt(src, agentID, now); err != nil {
			return 0, err
		}
	}
	if err := h.verify(ctx, token, agent.TokenHash); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return 0, err
		}
		h.log.Info("agent refused: token does not match", "agent_id", agentID, "source", src.String())
		h.chargeFailure(src, agentID)
		return 0, &httpError{status: http.StatusUnauthorized, message: msgInvalidToken}
	}
	h.cache.put(key, agentID, agent.TokenHash, now)
	return agentID, nil
}

// allowAttempt refuses with 429 while the source or the agent id has no failure left.
func (h *Hub) allowAttempt(src sourceKey, agentID int64, now time.Time) error {
	ok, wait, first := h.bySource.allow(src, now)
	if !ok {
		if first {
			h.log.Warn("agent handshakes rate limited: too many failed tokens from this source", "source", src.String())
		}
		return &httpError{status: http.StatusTooManyRequests, message: msgRateLimited, retryAfter: wait}
	}
	ok, wait, first = h.byAgent.allow(agentID, now)
	if !ok {
		if first {
			h.log.Warn("agent handshakes rate limited: too many failed tokens for this agent id", "agent_id", agentID, "source", src.String())
		}
		return &httpError{status: http.StatusTooManyRequests, message: msgRateLimited, retryAfter: wait}
	}
	return nil
}

// chargeFailure spends a token of the source and of the agent id. It reads the clock
// again: the check may have waited for a slot.
func (h *Hub) chargeFailure(src sourceKey, agentID int64) {
	now := h.opts.Now()
	h.bySource.charge(src, now)
	h.byAgent.charge(agentID, now)
}

// verify runs the token check in one of the bcrypt slots; an *httpError means no slot
// was free in time, any other error a token that does not match.
func (h *Hub) verify(ctx context.Context, token, hash string) error {
	if !h.slots.acquire(ctx) {
		h.log.Warn("agent handshake refused: every token-check slot is busy", "slots", cap(h.slots.slots))
		return &httpError{status: http.StatusTooManyRequests, message: msgBusy, retryAfter: time.Second}
	}
	defer h.slots.release()
	return h.opts.VerifyToken(token, hash)
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

// peek reports whether key has a live entry for agentID, whatever the hash: a token worth
// checking against the agent's row before any limit is applied.
func (c *tokenCache) peek(key [sha256.Size]byte, agentID int64, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return ok && e.agentID == agentID && now.Before(e.expires)
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
	if _, ok := c.m[key]; !ok {
		makeRoom(c.m, c.max, func(e cacheEntry) bool { return !now.Before(e.expires) })
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
