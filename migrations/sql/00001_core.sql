-- The whole schema of DESIGN.md §6. Rules live here, not only in Go: every foreign key says
-- what happens on delete, every status column is constrained, every natural key is unique.

-- +goose Up
CREATE TABLE users (
	id          BIGSERIAL PRIMARY KEY,
	github_id   BIGINT NOT NULL UNIQUE CHECK (github_id > 0),
	login       TEXT NOT NULL CHECK (login <> ''),
	name        TEXT NOT NULL DEFAULT '',
	email       TEXT NOT NULL DEFAULT '',
	avatar_url  TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Installations are never deleted while projects point at them: a deleted installation is
-- marked, so its projects keep their history and simply deploy nothing.
CREATE TABLE github_installations (
	id            BIGSERIAL PRIMARY KEY,
	github_id     BIGINT NOT NULL UNIQUE CHECK (github_id > 0),
	account_login TEXT NOT NULL CHECK (account_login <> ''),
	account_id    BIGINT NOT NULL,
	account_type  TEXT NOT NULL CHECK (account_type IN ('User', 'Organization', 'Enterprise')),
	suspended_at  TIMESTAMPTZ,
	deleted_at    TIMESTAMPTZ,
	created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
	id              BIGSERIAL PRIMARY KEY,
	user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name            TEXT NOT NULL CHECK (name <> '' AND length(name) <= 100),
	-- bcrypt hash of the token's secret part; the token itself is never stored.
	token_hash      TEXT NOT NULL CHECK (token_hash LIKE '$2%'),
	status          TEXT NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline', 'busy')),
	last_heartbeat  TIMESTAMPTZ,
	version         TEXT NOT NULL DEFAULT '',
	hostname        TEXT NOT NULL DEFAULT '',
	docker_version  TEXT NOT NULL DEFAULT '',
	compose_version TEXT NOT NULL DEFAULT '',
	created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	UNIQUE (user_id, name)
);

CREATE TABLE projects (
	id              BIGSERIAL PRIMARY KEY,
	-- public_id is what stagely.yaml's project_id names (proj_...).
	public_id       TEXT NOT NULL UNIQUE CHECK (public_id ~ '^proj_[a-z0-9]{4,40}$'),
	user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	installation_id BIGINT NOT NULL REFERENCES github_installations (id) ON DELETE RESTRICT,
	name            TEXT NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
	repo_id         BIGINT NOT NULL CHECK (repo_id > 0),
	repo_full_name  TEXT NOT NULL CHECK (repo_full_name ~ '^[^/ ]+/[^/ ]+$'),
	deploy_branch   TEXT NOT NULL CHECK (deploy_branch <> ''),
	-- Unlinking an agent (or deleting it) leaves the project; it simply has nowhere to deploy.
	agent_id        BIGINT REFERENCES agents (id) ON DELETE SET NULL,
	-- compose_project is the stable `docker compose -p` name the agent keys its directory on.
	compose_project TEXT NOT NULL UNIQUE CHECK (compose_project ~ '^[a-z0-9][a-z0-9_-]*$'),
	created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	UNIQUE (user_id, name),
	-- A push to one branch of one repository maps to at most one project.
	UNIQUE (repo_id, deploy_branch)
);
CREATE INDEX projects_agent_id ON projects (agent_id);
CREATE INDEX projects_installation_id ON projects (installation_id);

CREATE TABLE secrets (
	id              BIGSERIAL PRIMARY KEY,
	project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	-- 'global' reaches every service; any other scope names one compose service.
	scope           TEXT NOT NULL CHECK (scope ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$'),
	key             TEXT NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]{0,254}$'),
	-- AES-256-GCM with (project_id, scope, key) as additional data; key_id names the master key.
	value_encrypted BYTEA NOT NULL,
	nonce           BYTEA NOT NULL CHECK (octet_length(nonce) = 12),
	key_id          TEXT NOT NULL CHECK (key_id <> ''),
	created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
	UNIQUE (project_id, scope, key)
);

CREATE TABLE webhook_deliveries (
	id              BIGSERIAL PRIMARY KEY,
	delivery_id     TEXT NOT NULL UNIQUE CHECK (delivery_id <> ''),
	event           TEXT NOT NULL CHECK (event <> ''),
	action          TEXT NOT NULL DEFAULT '',
	installation_id BIGINT,
	-- The raw body, byte for byte: the worker decodes it again after a crash.
	payload         BYTEA NOT NULL,
	status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'done', 'failed')),
	-- One line a user can read: "deployed as #12", "ignored: tag push".
	decision        TEXT NOT NULL DEFAULT '',
	attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	locked_until    TIMESTAMPTZ,
	received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
	processed_at    TIMESTAMPTZ,
	CHECK ((status IN ('done', 'failed')) = (processed_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (received_at) WHERE status IN ('pending', 'processing');

CREATE TABLE deployments (
	id                   BIGSERIAL PRIMARY KEY,
	project_id           BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	-- Deleting an agent keeps the history of what it deployed.
	agent_id             BIGINT REFERENCES agents (id) ON DELETE SET NULL,
	sha                  TEXT NOT NULL CHECK (sha ~ '^[0-9a-f]{40}$'),
	ref                  TEXT NOT NULL CHECK (ref <> ''),
	trigger              TEXT NOT NULL CHECK (trigger IN ('push', 'rerun', 'rerun_all', 'redeploy', 'rollback', 'manual')),
	status               TEXT NOT NULL DEFAULT 'queued' CHECK (status IN (
		'queued', 'dispatched', 'running',
		'success', 'failure', 'timed_out', 'rolled_back', 'cancelled', 'superseded')),
	delivery_id          BIGINT REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
	superseded_by        BIGINT REFERENCES deployments (id) ON DELETE SET NULL,
	check_run_id         BIGINT,
	github_deployment_id BIGINT,
	error                TEXT NOT NULL DEFAULT '',
	-- The agent's per-service table from JOB_RESULT.
	services             JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(services) = 'array'),
	created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
	dispatched_at        TIMESTAMPTZ,
	started_at           TIMESTAMPTZ,
	finished_at          TIMESTAMPTZ,
	CHECK ((status IN ('success', 'failure', 'timed_out', 'rolled_back', 'cancelled', 'superseded')) = (finished_at IS NOT NULL))
);
-- One deployment at a time per project, enforced by the database.
CREATE UNIQUE INDEX deployments_one_active_per_project ON deployments (project_id) WHERE status IN ('dispatched', 'running');
CREATE INDEX deployments_project_created ON deployments (project_id, created_at DESC);
CREATE INDEX deployments_check_run ON deployments (check_run_id) WHERE check_run_id IS NOT NULL;

CREATE TABLE deployment_logs (
	deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
	seq           BIGINT NOT NULL CHECK (seq > 0),
	stream        TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
	line          TEXT NOT NULL,
	ts            TIMESTAMPTZ NOT NULL,
	-- A chunk sent again after a reconnect is the same row, not a second one.
	PRIMARY KEY (deployment_id, seq)
);

CREATE TABLE sessions (
	-- sha256 of the random session id in the cookie; the id itself is never stored.
	id_hash                BYTEA PRIMARY KEY CHECK (octet_length(id_hash) = 32),
	user_id                BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	-- The user's GitHub token, sealed like secrets (additional data: the id hash).
	github_token_encrypted BYTEA,
	github_token_nonce     BYTEA CHECK (github_token_nonce IS NULL OR octet_length(github_token_nonce) = 12),
	github_token_key_id    TEXT,
	created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
	expires_at             TIMESTAMPTZ NOT NULL,
	revoked_at             TIMESTAMPTZ,
	CHECK (expires_at > created_at),
	CHECK ((github_token_encrypted IS NULL) = (github_token_nonce IS NULL)
		AND (github_token_encrypted IS NULL) = (github_token_key_id IS NULL))
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE audit_log (
	id          BIGSERIAL PRIMARY KEY,
	-- The trail outlives the user who caused it.
	user_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
	actor       TEXT NOT NULL CHECK (actor <> ''),
	action      TEXT NOT NULL CHECK (action <> ''),
	target_type TEXT NOT NULL DEFAULT '',
	target_id   TEXT NOT NULL DEFAULT '',
	detail      JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object'),
	created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_user_created ON audit_log (user_id, created_at DESC);

-- GitHub App credentials stored by the manifest flow at /setup; one row at most.
CREATE TABLE github_app (
	id                       SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
	app_id                   BIGINT NOT NULL CHECK (app_id > 0),
	slug                     TEXT NOT NULL DEFAULT '',
	client_id                TEXT NOT NULL,
	html_url                 TEXT NOT NULL DEFAULT '',
	-- private key, webhook secret and client secret sealed as one JSON document.
	credentials_encrypted    BYTEA NOT NULL,
	credentials_nonce        BYTEA NOT NULL CHECK (octet_length(credentials_nonce) = 12),
	credentials_key_id       TEXT NOT NULL CHECK (credentials_key_id <> ''),
	created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE github_app;
DROP TABLE audit_log;
DROP TABLE sessions;
DROP TABLE deployment_logs;
DROP TABLE deployments;
DROP TABLE webhook_deliveries;
DROP TABLE secrets;
DROP TABLE projects;
DROP TABLE agents;
DROP TABLE github_installations;
DROP TABLE users;
