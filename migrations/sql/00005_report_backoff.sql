-- A deployment's final report to GitHub is retried with a back-off kept here, per deployment, so
-- a restarted server keeps the schedule: report_attempts counts the attempts made, and
-- next_report_at is when the next may start (while one runs, when it may be taken over).
-- NULL next_report_at on an unreported deployment means its first report is under way.

-- +goose Up
ALTER TABLE deployments
	ADD COLUMN report_attempts INTEGER NOT NULL DEFAULT 0 CHECK (report_attempts >= 0),
	ADD COLUMN next_report_at TIMESTAMPTZ;

-- Reports still owed when the server is upgraded are due at once.
UPDATE deployments SET next_report_at = finished_at
WHERE finished_at IS NOT NULL AND reported_status <> status;

-- The sweeper looks for owed reports by when they are due.
CREATE INDEX deployments_report_due ON deployments (next_report_at)
WHERE finished_at IS NOT NULL AND reported_status <> status;

-- +goose Down
DROP INDEX deployments_report_due;
ALTER TABLE deployments DROP COLUMN report_attempts, DROP COLUMN next_report_at;
