-- Bootstrap tokens (issue 10): the token the dashboard shows, and that the install command and
-- cloud-init user data carry, is single-use and expires. At first connect the agent trades it at
-- POST /agent/bootstrap for its long-lived credential, whose hash goes to token_hash. Until then
-- token_hash is '' ("waiting for first connection"): no long-lived token of the agent works.
--
-- bootstrap_hash is kept after use so that a replay of the real token can be told from a guess
-- (and audited); bootstrap_used_at says it was used.

-- +goose Up
ALTER TABLE agents DROP CONSTRAINT agents_token_hash_check;
ALTER TABLE agents ADD CONSTRAINT agents_token_hash_check CHECK (token_hash = '' OR token_hash LIKE '$2%');
ALTER TABLE agents
	ADD COLUMN bootstrap_hash       TEXT NOT NULL DEFAULT '' CHECK (bootstrap_hash = '' OR bootstrap_hash LIKE '$2%'),
	ADD COLUMN bootstrap_expires_at TIMESTAMPTZ,
	ADD COLUMN bootstrap_used_at    TIMESTAMPTZ;
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, created_at DESC);

-- +goose Down
DROP INDEX audit_log_target;
ALTER TABLE agents DROP COLUMN bootstrap_hash, DROP COLUMN bootstrap_expires_at, DROP COLUMN bootstrap_used_at;
UPDATE agents SET token_hash = '$2a$10$waitingforfirstconnectionxxxxxxxxxxxxxxxxxxxxxxxxxxxx' WHERE token_hash = '';
ALTER TABLE agents DROP CONSTRAINT agents_token_hash_check;
ALTER TABLE agents ADD CONSTRAINT agents_token_hash_check CHECK (token_hash LIKE '$2%');
