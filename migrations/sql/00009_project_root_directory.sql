-- Monorepos (docs/monorepos.md): a project's root directory is the folder of the repository
-- that holds its stagely.yaml and compose file ('' = the repository root). Several projects
-- may deploy one branch of one repository, one per root directory.

-- +goose Up
ALTER TABLE projects ADD COLUMN root_directory TEXT NOT NULL DEFAULT ''
	CONSTRAINT projects_root_directory_check CHECK (
		length(root_directory) <= 1024
		AND root_directory !~ '^/'
		AND root_directory !~ '/$'
		AND root_directory !~ '(^|/)\.\.?(/|$)'
		AND position('//' IN root_directory) = 0
		AND root_directory !~ '[\\[:cntrl:]]'
	);
ALTER TABLE projects DROP CONSTRAINT projects_repo_id_deploy_branch_key;
-- A push to one branch of one repository maps to at most one project per root directory.
ALTER TABLE projects ADD CONSTRAINT projects_repo_id_deploy_branch_root_directory_key
	UNIQUE (repo_id, deploy_branch, root_directory);

-- +goose Down
ALTER TABLE projects DROP CONSTRAINT projects_repo_id_deploy_branch_root_directory_key;
ALTER TABLE projects ADD CONSTRAINT projects_repo_id_deploy_branch_key UNIQUE (repo_id, deploy_branch);
ALTER TABLE projects DROP COLUMN root_directory;
