-- Self-update (docs/agents.md): the server offers an idle agent the build it serves unless
-- its owner switched automatic update off for that agent.

-- +goose Up
ALTER TABLE agents ADD COLUMN auto_update BOOLEAN NOT NULL DEFAULT TRUE;

-- +goose Down
ALTER TABLE agents DROP COLUMN auto_update;
