-- A delivery's raw body (commit messages, file lists) is kept only until the delivery is
-- decided: the worker reads it, nothing after. What the delivery was (its id, event, action,
-- installation, repository) and its decision stay until the retention prunes the row.

-- +goose Up
ALTER TABLE webhook_deliveries ALTER COLUMN payload DROP NOT NULL;
UPDATE webhook_deliveries SET payload = NULL WHERE status IN ('done', 'failed');
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_payload_until_decided
	CHECK (payload IS NOT NULL OR status IN ('done', 'failed'));
-- The pruner deletes settled deliveries by age.
CREATE INDEX webhook_deliveries_processed ON webhook_deliveries (processed_at) WHERE processed_at IS NOT NULL;

-- +goose Down
DROP INDEX webhook_deliveries_processed;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_payload_until_decided;
-- Bodies already dropped cannot come back: an empty body is what a decided delivery had.
UPDATE webhook_deliveries SET payload = ''::bytea WHERE payload IS NULL;
ALTER TABLE webhook_deliveries ALTER COLUMN payload SET NOT NULL;
