-- A delivery keeps the id of the repository it is about, read from its payload once when it is
-- recorded: the worker keeps the deliveries of one repository in order by this column, without
-- parsing payloads again. NULL for events about no single repository (installation events).

-- +goose Up
ALTER TABLE webhook_deliveries ADD COLUMN repository_id BIGINT;

-- Deliveries still waiting when the server is upgraded get theirs from the payload, so their
-- order holds across the upgrade. Finished ones are history and keep NULL. A payload that is
-- not JSON (the worker rejects it) keeps NULL too, rather than stopping the upgrade.
-- +goose StatementBegin
DO $$
DECLARE
	r RECORD;
BEGIN
	FOR r IN SELECT id, payload FROM webhook_deliveries WHERE status IN ('pending', 'processing') LOOP
		BEGIN
			UPDATE webhook_deliveries
			SET repository_id = (convert_from(r.payload, 'UTF8')::jsonb #>> '{repository,id}')::bigint
			WHERE id = r.id;
		EXCEPTION WHEN others THEN
			NULL;
		END;
	END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE webhook_deliveries DROP COLUMN repository_id;
