package store

import (
	"context"
	"database/sql"
	"time"
)

// Agent statuses.
const (
	AgentOnline  = "online"
	AgentOffline = "offline"
	AgentBusy    = "busy"
)

// Agent is a server running stagely-agent.
type Agent struct {
	ID             int64        `db:"id"`
	UserID         int64        `db:"user_id"`
	Name           string       `db:"name"`
	TokenHash      string       `db:"token_hash"`
	Status         string       `db:"status"`
	LastHeartbeat  sql.NullTime `db:"last_heartbeat"`
	Version        string       `db:"version"`
	Hostname       string       `db:"hostname"`
	DockerVersion  string       `db:"docker_version"`
	ComposeVersion string       `db:"compose_version"`
	// AutoUpdate lets the server offer the agent the build it serves (docs/agents.md).
	AutoUpdate bool      `db:"auto_update"`
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
	// BootstrapHash is the bcrypt hash of the agent's single-use bootstrap token, kept after
	// use so that a replay of the real token can be told from a guess.
	BootstrapHash      string       `db:"bootstrap_hash"`
	BootstrapExpiresAt sql.NullTime `db:"bootstrap_expires_at"`
	BootstrapUsedAt    sql.NullTime `db:"bootstrap_used_at"`
	// BootstrapKeyHash is the SHA-256 (hex) of the exchange key the agent sent with its
	// bootstrap token, '' if none: a retry with the same key may get a new credential
	// (RetryAgentBootstrap).
	BootstrapKeyHash string `db:"bootstrap_key_hash"`
}

// WaitingForFirstConnection reports whether the agent has no long-lived credential yet: its
// bootstrap token (from creation or the last rotation) has not been exchanged.
func (a Agent) WaitingForFirstConnection() bool { return a.TokenHash == "" }

// CreateAgent inserts an agent whose token hash comes from mint, which receives the new
// agent's id first: tokens carry the id, so the id is drawn before the row is written.
func (s *Store) CreateAgent(ctx context.Context, userID int64, name string, mint func(agentID int64) (hash string, err error)) (Agent, error) {
	var id int64
	if err := s.get(ctx, &id, "agent id sequence", "agents_id_seq", `SELECT nextval('agents_id_seq')`); err != nil {
		return Agent{}, err
	}
	hash, err := mint(id)
	if err != nil {
		return Agent{}, err
	}
	return getAs[Agent](ctx, s, "agent", name, `
		INSERT INTO agents (id, user_id, name, token_hash) VALUES ($1, $2, $3, $4) RETURNING *`,
		id, userID, name, hash)
}

// AgentByID returns one agent.
func (s *Store) AgentByID(ctx context.Context, id int64) (Agent, error) {
	return getAs[Agent](ctx, s, "agent", id, `SELECT * FROM agents WHERE id = $1`, id)
}

// AgentForUser returns an agent only if userID owns it; anyone else gets not found.
func (s *Store) AgentForUser(ctx context.Context, userID, agentID int64) (Agent, error) {
	return getAs[Agent](ctx, s, "agent", agentID, `SELECT * FROM agents WHERE id = $1 AND user_id = $2`, agentID, userID)
}

// AgentsByUser lists a user's agents, oldest first.
func (s *Store) AgentsByUser(ctx context.Context, userID int64) ([]Agent, error) {
	return selectAs[Agent](ctx, s, `SELECT * FROM agents WHERE user_id = $1 ORDER BY id`, userID)
}

// SetAgentTokenHash replaces the agent's token hash (token rotation).
func (s *Store) SetAgentTokenHash(ctx context.Context, id int64, hash string) error {
	return s.execOne(ctx, "agent", id, `UPDATE agents SET token_hash = $2, updated_at = now() WHERE id = $1`, id, hash)
}

// SetAgentBootstrap gives the agent a new single-use bootstrap token (its hash) valid until
// expires, and drops its long-lived credential: the agent waits for its first connection again.
func (s *Store) SetAgentBootstrap(ctx context.Context, id int64, hash string, expires time.Time) error {
	return s.execOne(ctx, "agent", id, `
		UPDATE agents SET bootstrap_hash = $2, bootstrap_expires_at = $3, bootstrap_used_at = NULL,
		       bootstrap_key_hash = '', token_hash = '', updated_at = now()
		WHERE id = $1`, id, hash, expires)
}

// ConsumeAgentBootstrap trades the agent's bootstrap token for its long-lived credential in
// one statement: it sets token_hash to tokenHash, and keeps keyHash (the exchange key's
// hash, or empty), only if the bootstrap hash is still bootstrapHash, unused and not expired at
// now. It reports whether it did; of two concurrent exchanges of one token, one wins.
func (s *Store) ConsumeAgentBootstrap(ctx context.Context, id int64, bootstrapHash, tokenHash, keyHash string, now time.Time) (bool, error) {
	return s.execWon(ctx, `
		UPDATE agents SET token_hash = $3, bootstrap_key_hash = $5, bootstrap_used_at = $4, updated_at = now()
		WHERE id = $1 AND bootstrap_hash = $2 AND bootstrap_hash <> '' AND bootstrap_used_at IS NULL
		  AND bootstrap_expires_at > $4`, id, bootstrapHash, tokenHash, now, keyHash)
}

// RetryAgentBootstrap replaces the credential a bootstrap exchange minted with tokenHash,
// revoking the first, for an agent that lost the answer: only if the bootstrap token is
// still bootstrapHash, was used after usedAfter with the exchange key hashed keyHash, and
// the agent has not connected since (its first credential was never used). It reports
// whether it did.
func (s *Store) RetryAgentBootstrap(ctx context.Context, id int64, bootstrapHash, keyHash, tokenHash string, usedAfter time.Time) (bool, error) {
	return s.execWon(ctx, `
		UPDATE agents SET token_hash = $4, updated_at = now()
		WHERE id = $1 AND bootstrap_hash = $2 AND bootstrap_hash <> '' AND bootstrap_key_hash = $3
		  AND bootstrap_key_hash <> '' AND bootstrap_used_at > $5
		  AND (last_heartbeat IS NULL OR last_heartbeat < bootstrap_used_at)`,
		id, bootstrapHash, keyHash, tokenHash, usedAfter)
}

// execWon runs a conditional UPDATE of one row and reports whether it changed the row.
func (s *Store) execWon(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return false, mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err)
	}
	return n == 1, nil
}

// AgentHello records what an agent said about itself when it connected.
type AgentHello struct {
	Version, Hostname, Docker, Compose string
}

// MarkAgentConnected sets the agent online with its HELLO details and a fresh heartbeat.
func (s *Store) MarkAgentConnected(ctx context.Context, id int64, h AgentHello, at time.Time) error {
	return s.execOne(ctx, "agent", id, `
		UPDATE agents SET status = 'online', version = $2, hostname = $3, docker_version = $4,
		       compose_version = $5, last_heartbeat = $6, updated_at = now()
		WHERE id = $1`, id, h.Version, h.Hostname, h.Docker, h.Compose, at)
}

// SetAgentAutoUpdate switches automatic update of the agent on or off.
func (s *Store) SetAgentAutoUpdate(ctx context.Context, id int64, on bool) error {
	return s.execOne(ctx, "agent", id, `UPDATE agents SET auto_update = $2, updated_at = now() WHERE id = $1`, id, on)
}

// SetAgentStatus sets online, offline or busy.
func (s *Store) SetAgentStatus(ctx context.Context, id int64, status string) error {
	return s.execOne(ctx, "agent", id, `UPDATE agents SET status = $2, updated_at = now() WHERE id = $1`, id, status)
}

// TouchAgent records a heartbeat.
func (s *Store) TouchAgent(ctx context.Context, id int64, at time.Time) error {
	return s.execOne(ctx, "agent", id, `UPDATE agents SET last_heartbeat = $2 WHERE id = $1`, id, at)
}

// MarkStaleAgentsOffline sets offline every agent not heard from since before; it returns their ids.
// A server that restarts calls it so no agent stays "online" from the last run.
func (s *Store) MarkStaleAgentsOffline(ctx context.Context, before time.Time) ([]int64, error) {
	return selectAs[int64](ctx, s, `
		UPDATE agents SET status = 'offline', updated_at = now()
		WHERE status <> 'offline' AND (last_heartbeat IS NULL OR last_heartbeat < $1)
		RETURNING id`, before)
}

// DeleteAgent removes an agent owned by userID; projects keep existing with no agent.
func (s *Store) DeleteAgent(ctx context.Context, userID, id int64) error {
	return s.execOne(ctx, "agent", id, `DELETE FROM agents WHERE id = $1 AND user_id = $2`, id, userID)
}
