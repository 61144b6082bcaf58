-- An answer of POST /agent/bootstrap the network lost (issue 10 review): the agent sends an
-- exchange key it keeps on its disk with the bootstrap token, and the server keeps the key's
-- SHA-256 (hex) with the used token. A retry with the same token and key shortly after, while
-- the credential minted first was never used, gets a new credential; any other replay is
-- refused and audited. '' when the exchange carried no key (an older agent) or none happened.

-- +goose Up
ALTER TABLE agents ADD COLUMN bootstrap_key_hash TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE agents DROP COLUMN bootstrap_key_hash;
