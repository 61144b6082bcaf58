-- Preview environments for pull requests (issue 12, docs/previews.md). A preview is a
-- deployment whose environment is 'preview/pr-<n>': it is queued, dispatched, reported and
-- retried like a production deployment, but one may run per environment, so previews and
-- production never wait on each other's rows. The previews table is the pull request's
-- lifecycle; each deploy or teardown of it is a deployments row.

-- +goose Up
-- The dashboard switch, and the agent previews go to (NULL: the project's own agent).
ALTER TABLE projects ADD COLUMN previews_enabled BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE projects ADD COLUMN preview_agent_id BIGINT REFERENCES agents (id) ON DELETE SET NULL;

-- Secrets come in two sets: production (every secret so far) and preview. A production
-- secret reaches previews only when it is marked share_with_previews; a preview secret of the
-- same scope and key wins over a shared production one.
ALTER TABLE secrets ADD COLUMN environment TEXT NOT NULL DEFAULT 'production'
	CONSTRAINT secrets_environment_check CHECK (environment IN ('production', 'preview'));
ALTER TABLE secrets ADD COLUMN share_with_previews BOOLEAN NOT NULL DEFAULT false
	CONSTRAINT secrets_share_with_previews_check CHECK (NOT share_with_previews OR environment = 'production');
ALTER TABLE secrets DROP CONSTRAINT secrets_project_id_scope_key_key;
ALTER TABLE secrets ADD CONSTRAINT secrets_project_id_environment_scope_key_key
	UNIQUE (project_id, environment, scope, key);

ALTER TABLE deployments ADD COLUMN environment TEXT NOT NULL DEFAULT 'production'
	CONSTRAINT deployments_environment_check CHECK (environment = 'production' OR environment ~ '^preview/pr-[1-9][0-9]{0,9}$');
-- 'preview' deploys a pull request's head; 'preview_stop' tears its preview down (closed,
-- idle or too old).
ALTER TABLE deployments DROP CONSTRAINT deployments_trigger_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_trigger_check CHECK (trigger IN (
	'push', 'rerun', 'rerun_all', 'redeploy', 'rollback', 'manual', 'preview', 'preview_stop'));
DROP INDEX deployments_one_active_per_project;
-- One deployment at a time per project and environment, enforced by the database.
CREATE UNIQUE INDEX deployments_one_active_per_environment ON deployments (project_id, environment)
	WHERE status IN ('dispatched', 'running');

CREATE TABLE previews (
	id                   BIGSERIAL PRIMARY KEY,
	project_id           BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	pr_number            INTEGER NOT NULL CHECK (pr_number > 0),
	head_sha             TEXT NOT NULL CHECK (head_sha ~ '^[0-9a-f]{40}$'),
	head_ref             TEXT NOT NULL DEFAULT '',
	-- owner/name of the head's repository: a fork when it differs from the project's.
	head_repo_full_name  TEXT NOT NULL DEFAULT '',
	author_login         TEXT NOT NULL DEFAULT '',
	-- awaiting_approval: a fork's (or an outsider's) PR until a user with write access
	-- presses "Deploy preview"; queued: waiting for a free preview slot on the agent;
	-- deploying, live, failed; stopping while its teardown runs; stopped at the end.
	state                TEXT NOT NULL CHECK (state IN (
		'awaiting_approval', 'queued', 'deploying', 'live', 'failed', 'stopping', 'stopped')),
	-- The head SHA a permitted user approved, and who: a later push of a fork needs approval again.
	approved_sha         TEXT NOT NULL DEFAULT '',
	approved_by          TEXT NOT NULL DEFAULT '',
	-- The agent the preview runs on, kept so its teardown goes to the same host.
	agent_id             BIGINT REFERENCES agents (id) ON DELETE SET NULL,
	-- The one PR comment Stagely keeps up to date, and the GitHub deployment of environment preview/pr-<n>.
	comment_id           BIGINT,
	github_deployment_id BIGINT,
	-- The preview's URLs, {"web": "https://web--pr-7--shop.preview.example.com"}.
	urls                 JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(urls) = 'object'),
	stop_reason          TEXT NOT NULL DEFAULT '',
	created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
	last_deployed_at     TIMESTAMPTZ,
	UNIQUE (project_id, pr_number)
);
CREATE INDEX previews_agent_state ON previews (agent_id, state);

-- +goose Down
DROP TABLE previews;
DROP INDEX deployments_one_active_per_environment;
DELETE FROM deployments WHERE environment <> 'production';
CREATE UNIQUE INDEX deployments_one_active_per_project ON deployments (project_id) WHERE status IN ('dispatched', 'running');
ALTER TABLE deployments DROP CONSTRAINT deployments_trigger_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_trigger_check CHECK (trigger IN (
	'push', 'rerun', 'rerun_all', 'redeploy', 'rollback', 'manual'));
ALTER TABLE deployments DROP COLUMN environment;
DELETE FROM secrets WHERE environment <> 'production';
ALTER TABLE secrets DROP CONSTRAINT secrets_project_id_environment_scope_key_key;
ALTER TABLE secrets ADD CONSTRAINT secrets_project_id_scope_key_key UNIQUE (project_id, scope, key);
ALTER TABLE secrets DROP COLUMN share_with_previews;
ALTER TABLE secrets DROP COLUMN environment;
ALTER TABLE projects DROP COLUMN preview_agent_id;
ALTER TABLE projects DROP COLUMN previews_enabled;
