package hub

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/store"
)

// Audit actions the hub records about agents.
const (
	AuditBootstrapExchanged = "agent.bootstrap_exchanged"
	AuditBootstrapRetried   = "agent.bootstrap_retried"
	AuditBootstrapReplayed  = "agent.bootstrap_replayed"
	AuditBootstrapExpired   = "agent.bootstrap_expired"
	AuditDuplicateRefused   = "agent.duplicate_refused"
)

// Messages of refused bootstrap exchanges. Used and expired are told apart only to the
// holder of the real token (after its hash matched): a guesser learns nothing.
const (
	msgBootstrapMethod  = "use POST to exchange a bootstrap token"
	msgBootstrapMissing = "missing bootstrap token: send Authorization: Bearer stgb_<agent id>_<secret>"
	msgBootstrapInvalid = "invalid bootstrap token"
	msgBootstrapUsed    = "bootstrap token already used: it works once. Rotate the agent's token in the dashboard and run the new install command"
	msgBootstrapExpired = "bootstrap token expired: rotate the agent's token in the dashboard and run the new install command"
	msgBootstrapAtWS    = "this is a bootstrap token (stgb_...): the agent exchanges it at POST /agent/bootstrap first; update the agent"
	msgBootstrapKey     = "malformed " + protocol.BootstrapKeyHeader + ": want 43 base64url characters (32 random bytes)"
)

// BootstrapRetryWindow is how long after an exchange the agent may ask again with the
// same bootstrap token and exchange key, having lost the answer, and get a new credential.
const BootstrapRetryWindow = time.Hour

// BootstrapAnswer is the body of a successful POST /agent/bootstrap: the agent's long-lived
// token, shown this once. The agent writes it to its config.json and never logs it.
type BootstrapAnswer struct {
	Token string `json:"token"`
}

// Bootstrap returns the handler of POST /agent/bootstrap, where an agent trades its
// single-use bootstrap token for its long-lived token. The handshake limits of
// GET /agent/ws apply: failures spend from the source's and the agent id's buckets, and the
// bcrypt check runs in one of the same slots.
func (h *Hub) Bootstrap() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, msgBootstrapMethod)
			return
		}
		addr := clientAddr(r, h.opts.TrustedProxies)
		token, err := h.exchange(r.Context(), r.Header.Get("Authorization"), r.Header.Get(protocol.BootstrapKeyHeader), keyOf(addr), addr.String())
		if err != nil {
			if !errors.As(err, new(*httpError)) {
				h.log.Error("bootstrap exchange", "err", err)
			}
			writeRefusal(w, err, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(BootstrapAnswer{Token: token})
	})
}

// exchange checks a bootstrap token and, the first time only and before it expires, mints
// the agent's long-lived token and stores its hash, and the exchange key's (key, "" if the
// agent sent none). A retry with the same key soon after gets a new credential (retry).
// Neither token nor the key is logged.
func (h *Hub) exchange(ctx context.Context, header, key string, src sourceKey, addr string) (string, error) {
	token, ok := bearerToken(header)
	if !ok || !agenttoken.IsBootstrap(token) {
		return "", &httpError{status: http.StatusUnauthorized, message: msgBootstrapMissing}
	}
	keyHash, err := exchangeKeyHash(key)
	if err != nil {
		return "", err
	}
	agentID, err := agenttoken.AgentID(token)
	if err != nil {
		return "", &httpError{status: http.StatusUnauthorized, message: msgMalformedToken}
	}
	if err := h.allowAttempt(src, agentID, h.opts.Now()); err != nil {
		return "", err
	}
	agent, err := h.opts.Store.AgentByID(ctx, agentID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("look up agent %d: %w", agentID, err)
	}
	if err != nil || agent.BootstrapHash == "" {
		return "", h.refuseBootstrap(agentID, src, "unknown agent or no bootstrap token")
	}
	if err := h.verify(ctx, token, agent.BootstrapHash); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return "", err
		}
		return "", h.refuseBootstrap(agentID, src, "bootstrap token does not match")
	}
	now := h.opts.Now()
	switch {
	case agent.BootstrapUsedAt.Valid:
		return h.retry(ctx, agent, keyHash, src, addr)
	case !agent.BootstrapExpiresAt.Valid || !now.Before(agent.BootstrapExpiresAt.Time):
		return "", h.refuseGenuine(ctx, agent, src, addr, AuditBootstrapExpired, msgBootstrapExpired)
	}
	minted, err := h.opts.MintToken(agentID)
	if err != nil {
		return "", fmt.Errorf("mint long-lived token of agent %d: %w", agentID, err)
	}
	won, err := h.opts.Store.ConsumeAgentBootstrap(ctx, agentID, agent.BootstrapHash, minted.Hash, keyHash, now)
	if err != nil {
		return "", fmt.Errorf("store long-lived token of agent %d: %w", agentID, err)
	}
	if !won {
		// Another exchange of the same token (or a rotation) committed first.
		return "", h.refuseGenuine(ctx, agent, src, addr, AuditBootstrapReplayed, msgBootstrapUsed)
	}
	h.cache.forgetAgent(agentID)
	h.log.Info("agent bootstrap token exchanged for its long-lived token", "agent_id", agentID, "source", addr)
	h.audit(ctx, agent, AuditBootstrapExchanged, map[string]any{"source": addr})
	return minted.Token, nil
}

// retry answers the real bootstrap token used already. An agent whose answer the network
// lost asks again with the same exchange key: within BootstrapRetryWindow of the exchange,
// and while the credential minted then was never used, it gets a new one and the first is
// revoked. Any other use is a replay, refused and audited.
func (h *Hub) retry(ctx context.Context, agent store.Agent, keyHash string, src sourceKey, addr string) (string, error) {
	now := h.opts.Now()
	if keyHash == "" || subtle.ConstantTimeCompare([]byte(keyHash), []byte(agent.BootstrapKeyHash)) != 1 ||
		!now.Before(agent.BootstrapUsedAt.Time.Add(BootstrapRetryWindow)) {
		return "", h.refuseGenuine(ctx, agent, src, addr, AuditBootstrapReplayed, msgBootstrapUsed)
	}
	minted, err := h.opts.MintToken(agent.ID)
	if err != nil {
		return "", fmt.Errorf("mint long-lived token of agent %d: %w", agent.ID, err)
	}
	won, err := h.opts.Store.RetryAgentBootstrap(ctx, agent.ID, agent.BootstrapHash, keyHash, minted.Hash, now.Add(-BootstrapRetryWindow))
	if err != nil {
		return "", fmt.Errorf("store long-lived token of agent %d: %w", agent.ID, err)
	}
	if !won {
		// The agent connected with the first credential, or a rotation came first.
		return "", h.refuseGenuine(ctx, agent, src, addr, AuditBootstrapReplayed, msgBootstrapUsed)
	}
	h.cache.forgetAgent(agent.ID)
	h.log.Info("agent lost the answer of its bootstrap exchange: a new long-lived token replaces the first", "agent_id", agent.ID, "source", addr)
	h.audit(ctx, agent, AuditBootstrapRetried, map[string]any{"source": addr})
	return minted.Token, nil
}

// exchangeKeyHash is the SHA-256 (hex) of an exchange key, "" for none; a key of another
// form is refused.
func exchangeKeyHash(key string) (string, error) {
	if key == "" {
		return "", nil
	}
	if len(key) != protocol.BootstrapKeyLen || strings.ContainsFunc(key, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return "", &httpError{status: http.StatusBadRequest, message: msgBootstrapKey}
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]), nil
}

// refuseBootstrap answers a token that is not the agent's bootstrap token, like a bad token
// at GET /agent/ws.
func (h *Hub) refuseBootstrap(agentID int64, src sourceKey, why string) error {
	h.log.Info("bootstrap exchange refused: "+why, "agent_id", agentID, "source", src.String())
	h.chargeFailure(src, agentID)
	return &httpError{status: http.StatusUnauthorized, message: msgBootstrapInvalid}
}

// refuseGenuine refuses the real bootstrap token used again or too late, and records it in
// the audit log: a replay may mean the token leaked (from user data, say).
func (h *Hub) refuseGenuine(ctx context.Context, agent store.Agent, src sourceKey, addr, action, message string) error {
	h.log.Warn("bootstrap exchange refused", "agent_id", agent.ID, "source", addr, "action", action)
	h.chargeFailure(src, agent.ID)
	detail := map[string]any{"source": addr}
	if agent.BootstrapUsedAt.Valid {
		detail["used_at"] = agent.BootstrapUsedAt.Time.UTC().Format(time.RFC3339)
	}
	if agent.BootstrapExpiresAt.Valid {
		detail["expired_at"] = agent.BootstrapExpiresAt.Time.UTC().Format(time.RFC3339)
	}
	if h.paceAudit(action, agent.ID) {
		h.audit(ctx, agent, action, detail)
	}
	return &httpError{status: http.StatusGone, message: message}
}

// audit records an event about the agent for its owner; a failure is logged, not returned:
// the refusal stands either way.
func (h *Hub) audit(ctx context.Context, agent store.Agent, action string, detail map[string]any) {
	raw, err := json.Marshal(detail)
	if err != nil {
		h.log.Error("encode audit detail", "action", action, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	err = h.opts.Store.AddAudit(ctx, store.AuditEntry{
		UserID: nullInt64(agent.UserID), Actor: "agent " + agent.Name, Action: action,
		TargetType: "agent", TargetID: strconv.FormatInt(agent.ID, 10), Detail: raw,
	})
	if err != nil {
		h.log.Error("record audit entry", "agent_id", agent.ID, "action", action, "err", err)
	}
}
