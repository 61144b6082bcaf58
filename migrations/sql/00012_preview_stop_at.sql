-- When an idle preview is stopped (stagely.yaml's preview.stop_after after its last deploy),
-- set at each deploy of the preview; NULL while it has none. The dashboard can show it.

-- +goose Up
ALTER TABLE previews ADD COLUMN stop_at TIMESTAMPTZ;
CREATE INDEX previews_stop_at ON previews (stop_at) WHERE state IN ('live', 'failed');

-- +goose Down
DROP INDEX previews_stop_at;
ALTER TABLE previews DROP COLUMN stop_at;
