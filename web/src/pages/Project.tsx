// One project: which agent deploys it, its secrets (production and previews), its pull request
// previews, and its recent deployments.
import { useState, type FormEvent } from 'react';
import { asApiError, type ApiError, type Project } from '../api';
import { useApi } from '../context';
import { navigate } from '../router';
import { useResource } from '../resource';
import { useSave } from '../save';
import { NameInput } from '../components/NameInput';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { StatusBadge } from '../components/StatusBadge';
import { SecretsSection } from './Secrets';
import { DeploymentsSection } from './Deployments';
import { PreviewsSection } from './Previews';

export function ProjectPage({ id, deploymentsPollMs = 5000 }: { id: number; deploymentsPollMs?: number }) {
  const api = useApi();
  const project = useResource(() => api.project(id), `project:${id}`);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);

  if (project.status === 'loading') return <Loading what="the project" />;
  if (project.status === 'error' && !project.data) return <ErrorMessage error={project.error} onRetry={project.reload} />;
  const p = project.data as Project;

  const remove = () => {
    setDeleteError(null);
    api.deleteProject(p.id).then(
      () => navigate('/projects'),
      (e: unknown) => setDeleteError(asApiError(e)),
    );
  };

  return (
    <section data-testid="project-page">
      <div className="heading">
        <h1>{p.name}</h1>
        <ConfirmButton
          label="Delete project"
          question={`Delete ${p.name} with its secrets and deployment history?`}
          confirmLabel="Delete"
          onConfirm={remove}
          testId="project-delete"
        />
      </div>
      {deleteError && <ErrorMessage error={deleteError} />}
      <dl className="facts">
        <dt>Repository</dt>
        <dd>{p.repo_full_name}</dd>
        <dt>Deploy branch</dt>
        <dd>
          <code>{p.deploy_branch}</code>
        </dd>
        <dt>Root directory</dt>
        <dd>
          <RootDirectory project={p} />
        </dd>
        <dt>Compose project</dt>
        <dd>
          <code>{p.compose_project}</code>
        </dd>
      </dl>
      <AgentLink project={p} />
      <SecretsSection projectId={p.id} />
      <PreviewsSection project={p} pollMs={deploymentsPollMs} />
      <DeploymentsSection projectId={p.id} pollMs={deploymentsPollMs} />
    </section>
  );
}

/** Shows the project's root directory and changes it (PATCH root_directory). */
export function RootDirectory({ project }: { project: Project }) {
  const api = useApi();
  const [current, setCurrent] = useState(project.root_directory);
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(project.root_directory);
  const { saving, error, save } = useSave();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    save(api.updateProject(project.id, { root_directory: value.trim() }), (p) => {
      setCurrent(p.root_directory);
      setValue(p.root_directory);
      setEditing(false);
    });
  };

  if (!editing) {
    return (
      <>
        <code data-testid="project-root-directory">{current || '/'}</code>
        {!current && <span className="muted"> (the repository root)</span>}{' '}
        <button type="button" onClick={() => setEditing(true)} data-testid="project-root-directory-edit">
          Change
        </button>
      </>
    );
  }
  const fieldError = error?.fieldMessage('root_directory');
  return (
    <form onSubmit={submit} className="inline">
      <label htmlFor="project-root-directory-input" className="visually-hidden">
        Root directory
      </label>
      <NameInput
        id="project-root-directory-input"
        value={value}
        onValue={setValue}
        placeholder="empty for the repository root, or services/api"
        aria-describedby={fieldError ? 'project-root-directory-error' : undefined}
        data-testid="project-root-directory-input"
      />{' '}
      <button type="submit" className="primary" disabled={saving}>
        {saving ? 'Saving…' : 'Save'}
      </button>{' '}
      <button type="button" onClick={() => setEditing(false)} disabled={saving}>
        Cancel
      </button>
      {fieldError && (
        <p className="error" id="project-root-directory-error" data-testid="project-root-directory-error">
          {fieldError}
        </p>
      )}
      {error && !fieldError && <ErrorMessage error={error} />}
    </form>
  );
}

/** Links or unlinks the agent that deploys this project (PATCH agent_id). */
export function AgentLink({ project }: { project: Project }) {
  const api = useApi();
  const agents = useResource(() => api.agents(), 'agents');
  const [linked, setLinked] = useState(project.agent);
  const { saving, error, save } = useSave();
  const [saved, setSaved] = useState(false);

  const change = (value: string) => {
    setSaved(false);
    save(api.updateProject(project.id, { agent_id: value ? Number(value) : null }), (p) => {
      setLinked(p.agent);
      setSaved(true);
    });
  };

  return (
    <section aria-labelledby="agent-heading" className="card">
      <h2 id="agent-heading">Agent</h2>
      {agents.status === 'loading' && <Loading what="agents" />}
      {agents.status === 'error' && <ErrorMessage error={agents.error} onRetry={agents.reload} />}
      {agents.status === 'ready' && (
        <div className="field inline">
          <label htmlFor="project-agent-select">Deployed by</label>
          <select
            id="project-agent-select"
            data-testid="project-agent-select"
            value={linked ? String(linked.id) : ''}
            disabled={saving}
            onChange={(e) => change(e.target.value)}
          >
            <option value="">No agent (pushes are not deployed)</option>
            {agents.data.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.status})
              </option>
            ))}
          </select>
          {linked && <StatusBadge status={linked.status} />}
          <span role="status" className="muted">
            {saving ? 'Saving…' : saved ? 'Saved.' : ''}
          </span>
        </div>
      )}
      {agents.status === 'ready' && agents.data.length === 0 && (
        <p className="muted">You have no agents yet: create one on the Agents page, then link it here.</p>
      )}
      {error && <ErrorMessage error={error} />}
    </section>
  );
}
