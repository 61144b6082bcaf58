-- GitHub does not retry a webhook delivery that failed (the server or PostgreSQL was down). The
-- recovery loop (app/recovery) reads GitHub's delivery log and asks for a redelivery of each
-- event that never reached us, and keeps here what it asked for, one row per event (the
-- X-GitHub-Delivery GUID, which every redelivery keeps):
--  * so an event is asked for again only after a while, a few times at most, even by several
--    servers sharing the database;
--  * so the push handler knows when GitHub first tried to send a recovered push, and can tell it
--    is older than a push that reached us first (redeliveries arrive in any order).

-- +goose Up
CREATE TABLE webhook_redeliveries (
	guid              TEXT PRIMARY KEY CHECK (guid <> ''),
	event             TEXT NOT NULL,
	-- GitHub's id and time of the earliest attempt seen: GitHub's own order of its events.
	github_attempt_id BIGINT NOT NULL,
	first_attempt_at  TIMESTAMPTZ NOT NULL,
	requests          INTEGER NOT NULL DEFAULT 1 CHECK (requests > 0),
	requested_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_redeliveries_requested_at ON webhook_redeliveries (requested_at);

-- +goose Down
DROP TABLE webhook_redeliveries;
