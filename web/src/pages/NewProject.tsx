// Creating a project: installation -> repository, then optional name, branch and agent.
import { useState, type FormEvent } from 'react';
import type { Project, Repository } from '../api';
import { useApi } from '../context';
import { Link } from '../router';
import { useResource } from '../resource';
import { useSave } from '../save';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { Field } from '../components/Field';
import { NameInput } from '../components/NameInput';
import { projectNameProblem } from '../validation';

// Field names as the API reports them in validations[].
const fields = ['installation_id', 'repo_id', 'name', 'deploy_branch', 'root_directory', 'agent_id'] as const;

/** The name the server will choose when the name is left empty (docs/api.md). */
export function defaultProjectName(repo: Repository | undefined): string {
  const base = repo?.full_name.split('/').pop() ?? '';
  return base.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

export function NewProjectPage({ onCreated }: { onCreated: (p: Project) => void }) {
  const api = useApi();
  const installations = useResource(() => api.installations(), 'installations');
  const agents = useResource(() => api.agents(), 'agents');
  const [installationId, setInstallationId] = useState('');
  const repositories = useResource(
    () => (installationId ? api.repositories(Number(installationId)) : Promise.resolve([] as Repository[])),
    `repositories:${installationId}`,
  );
  const [repoId, setRepoId] = useState('');
  const [name, setName] = useState('');
  const [branch, setBranch] = useState('');
  const [rootDir, setRootDir] = useState('');
  const [agentId, setAgentId] = useState('');
  const { saving, error, clearError, save } = useSave();
  const [clientErrors, setClientErrors] = useState<Partial<Record<string, string>>>({});

  const repo = repositories.data?.find((r) => String(r.id) === repoId);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problems: Record<string, string> = {};
    if (!installationId) problems.installation_id = 'Choose the account the repository belongs to.';
    if (!repoId) problems.repo_id = 'Choose a repository.';
    const nameProblem = projectNameProblem(name);
    if (nameProblem) problems.name = nameProblem;
    setClientErrors(problems);
    clearError();
    if (Object.keys(problems).length > 0) {
      document.getElementById(`project-${Object.keys(problems)[0]}`)?.focus();
      return;
    }
    const created = api.createProject({
      installation_id: Number(installationId),
      repo_id: Number(repoId),
      ...(name ? { name } : {}),
      ...(branch ? { deploy_branch: branch } : {}),
      ...(rootDir.trim() ? { root_directory: rootDir.trim() } : {}),
      ...(agentId ? { agent_id: Number(agentId) } : {}),
    });
    save(created, onCreated);
  };

  const fieldError = (f: (typeof fields)[number]) => clientErrors[f] ?? error?.fieldMessage(f);
  // Validations for fields this form does not show still need to reach the user.
  const otherValidations = error?.validations.filter((v) => !(fields as readonly string[]).includes(v.field)) ?? [];

  if (installations.status === 'loading') return <Loading what="your GitHub installations" />;
  if (installations.status === 'error') return <ErrorMessage error={installations.error} onRetry={installations.reload} />;

  return (
    <section>
      <h1>New project</h1>
      {installations.data.length === 0 ? (
        <Empty testId="installations-empty">
          <p>
            <strong>The Stagely GitHub App is not installed on any account you can see.</strong> Install it on your
            account or organisation on GitHub, choose the repositories it may deploy, then come back here.
          </p>
          <button type="button" onClick={installations.reload}>
            Check again
          </button>
        </Empty>
      ) : (
        <form onSubmit={submit} noValidate data-testid="new-project-form" className="form">
          <Field id="project-installation_id" label="GitHub account" error={fieldError('installation_id')}>
            <select
              value={installationId}
              onChange={(e) => {
                setInstallationId(e.target.value);
                setRepoId('');
              }}
              data-testid="project-installation"
            >
              <option value="">Choose an account…</option>
              {installations.data.map((i) => (
                <option key={i.id} value={i.id}>
                  {i.account} ({i.account_type})
                </option>
              ))}
            </select>
          </Field>

          {installationId && repositories.status === 'loading' && <Loading what="repositories" />}
          {installationId && repositories.status === 'error' && (
            <ErrorMessage error={repositories.error} onRetry={repositories.reload} />
          )}
          {installationId && repositories.status === 'ready' && repositories.data.length === 0 && (
            <Empty testId="repositories-empty">
              <p>This installation gives Stagely no repositories. Add some in the App's settings on GitHub.</p>
            </Empty>
          )}

          <Field id="project-repo_id" label="Repository" error={fieldError('repo_id')}>
            <select
              value={repoId}
              onChange={(e) => setRepoId(e.target.value)}
              disabled={!installationId || repositories.status !== 'ready' || repositories.data.length === 0}
              data-testid="project-repository"
            >
              <option value="">Choose a repository…</option>
              {(repositories.data ?? []).map((r) => (
                <option key={r.id} value={r.id}>
                  {r.full_name}
                  {r.private ? ' (private)' : ''}
                </option>
              ))}
            </select>
          </Field>

          <Field
            id="project-name"
            label="Name (optional)"
            hint="Also the Docker Compose project name and the GitHub environment."
            error={fieldError('name')}
          >
            <NameInput
              value={name}
              onValue={setName}
              placeholder={defaultProjectName(repo) || 'from the repository name'}
              data-testid="project-name"
            />
          </Field>

          <Field
            id="project-deploy_branch"
            label="Deploy branch (optional)"
            hint="Pushes to this branch deploy."
            error={fieldError('deploy_branch')}
          >
            <NameInput
              value={branch}
              onValue={setBranch}
              placeholder={repo?.default_branch ?? 'the default branch'}
              data-testid="project-branch"
            />
          </Field>

          <Field
            id="project-root_directory"
            label="Root directory (optional)"
            hint="For a repository holding several projects: the folder with this project's stagely.yaml and compose file. Pushes that change nothing under it do not deploy."
            error={fieldError('root_directory')}
          >
            <NameInput
              value={rootDir}
              onValue={setRootDir}
              placeholder="the repository root, or a folder like services/api"
              data-testid="project-root-directory"
            />
          </Field>

          <Field
            id="project-agent_id"
            label="Agent (optional)"
            hint={agents.status === 'error' ? `Agents could not be loaded: ${agents.error.message}` : 'You can link one later.'}
            error={fieldError('agent_id')}
          >
            <select value={agentId} onChange={(e) => setAgentId(e.target.value)} data-testid="project-agent">
              <option value="">No agent yet</option>
              {(agents.data ?? []).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name} ({a.status})
                </option>
              ))}
            </select>
          </Field>

          {error && <ErrorMessage error={error} />}
          {otherValidations.length > 0 && (
            <div className="error" role="alert">
              {otherValidations.map((v) => (
                <p key={v.field}>
                  {v.field}: {v.message}
                </p>
              ))}
            </div>
          )}
          <div className="actions">
            <button type="submit" className="primary" disabled={saving} data-testid="project-create">
              {saving ? 'Creating…' : 'Create project'}
            </button>
            <Link to="/projects">Cancel</Link>
          </div>
        </form>
      )}
    </section>
  );
}
