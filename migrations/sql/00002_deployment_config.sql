-- A deployment keeps the stagely.yaml settings it ran with (the agent's JobConfig, no secrets),
-- so a later rollback can hand the agent the previous good SHA together with its own config,
-- and the GitHub report state, so a report that failed is retried instead of lost.

-- +goose Up
ALTER TABLE deployments
	ADD COLUMN config JSONB CHECK (config IS NULL OR jsonb_typeof(config) = 'object'),
	ADD COLUMN reported_status TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE deployments DROP COLUMN config, DROP COLUMN reported_status;
