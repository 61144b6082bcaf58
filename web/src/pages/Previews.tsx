// Pull request previews of one project: the switch, the agent they run on, and the list of
// previews with their state (queued ones shown as queued, forks waiting for approval as such).
import { useState } from 'react';
import type { Preview, Project } from '../api';
import { useApi } from '../context';
import { useResource } from '../resource';
import { useSave } from '../save';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { StatusBadge } from '../components/StatusBadge';
import { Time } from '../components/Time';

/** What each preview state means to the user, beside its badge. */
export const previewStateHelp: Record<Preview['state'], string> = {
  awaiting_approval: 'from a fork or an outside contributor: a user with write access presses "Deploy preview" on the check run',
  queued: 'waiting for a free preview slot on the agent',
  deploying: 'deploying the head commit',
  live: '',
  failed: 'the deploy failed: see the check run on the pull request',
  stopping: 'removing its containers, volumes and route',
  stopped: '',
};

/** The previews switch and the agent previews run on (PATCH previews_enabled, preview_agent_id). */
export function PreviewSettings({ project }: { project: Project }) {
  const api = useApi();
  const agents = useResource(() => api.agents(), 'agents');
  const [current, setCurrent] = useState({ enabled: project.previews_enabled, agent: project.preview_agent });
  const { saving, error, save } = useSave();
  const [saved, setSaved] = useState(false);

  const change = (patch: { previews_enabled?: boolean; preview_agent_id?: number | null }) => {
    setSaved(false);
    // The switch flips at once, as a switch does, and flips back if the server refuses.
    const before = current;
    if (patch.previews_enabled !== undefined) {
      setCurrent({ ...before, enabled: patch.previews_enabled });
    }
    const request = api.updateProject(project.id, patch).catch((err: unknown) => {
      setCurrent(before);
      throw err;
    });
    save(request, (p) => {
      setCurrent({ enabled: p.previews_enabled, agent: p.preview_agent });
      setSaved(true);
    });
  };

  return (
    <div className="previews-settings">
      <label className="switch">
        <input
          type="checkbox"
          role="switch"
          checked={current.enabled}
          aria-checked={current.enabled}
          disabled={saving}
          onChange={(e) => change({ previews_enabled: e.target.checked })}
          data-testid="previews-switch"
        />
        Deploy a preview of every pull request
      </label>
      <p className="hint">
        Each pull request gets its own compose project and URL, with the Previews secrets. The repository needs a{' '}
        <code>preview:</code> section in stagely.yaml; see the previews guide.
      </p>
      {agents.status === 'error' && <ErrorMessage error={agents.error} onRetry={agents.reload} />}
      {agents.status === 'ready' && (
        <div className="field inline">
          <label htmlFor="preview-agent-select">Previews run on</label>
          <select
            id="preview-agent-select"
            data-testid="preview-agent-select"
            value={current.agent ? String(current.agent.id) : ''}
            disabled={saving}
            onChange={(e) => change({ preview_agent_id: e.target.value ? Number(e.target.value) : null })}
          >
            <option value="">The project's own agent</option>
            {agents.data.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.status})
              </option>
            ))}
          </select>
        </div>
      )}
      <span role="status" className="muted" data-testid="previews-saved">
        {saving ? 'Saving…' : saved ? 'Saved.' : ''}
      </span>
      {error && <ErrorMessage error={error} />}
    </div>
  );
}

/** The project's previews, polled like the deployments list. */
export function PreviewsSection({ project, pollMs }: { project: Project; pollMs: number }) {
  const api = useApi();
  const previews = useResource(() => api.previews(project.id), `previews:${project.id}`, pollMs);
  return (
    <section aria-labelledby="previews-heading" className="card" data-testid="previews-section">
      <h2 id="previews-heading">Pull request previews</h2>
      <PreviewSettings project={project} />
      {previews.status === 'loading' && <Loading what="previews" />}
      {previews.status === 'error' && <ErrorMessage error={previews.error} onRetry={previews.reload} />}
      {previews.status === 'ready' && previews.data.length === 0 && (
        <Empty testId="previews-empty">
          <p>No previews yet. Open a pull request once previews are switched on.</p>
        </Empty>
      )}
      {previews.data && previews.data.length > 0 && (
        <table className="list" data-testid="previews-list">
          <thead>
            <tr>
              <th scope="col">Pull request</th>
              <th scope="col">State</th>
              <th scope="col">Commit</th>
              <th scope="col">URLs</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {previews.data.map((p) => (
              <PreviewRow key={p.pr_number} preview={p} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function PreviewRow({ preview: p }: { preview: Preview }) {
  const help = p.state === 'stopped' && p.stop_reason ? p.stop_reason : previewStateHelp[p.state];
  const urls = Object.entries(p.urls).sort(([a], [b]) => a.localeCompare(b));
  return (
    <tr data-testid="preview-row" data-pr={p.pr_number} data-state={p.state}>
      <td>
        <a href={p.pull_request_url}>#{p.pr_number}</a> <code>{p.head_ref}</code>
        <p className="small muted">
          by {p.author || 'unknown'}
          {p.fork && ` from the fork ${p.head_repo}`}
          {p.approved_by && `, approved by ${p.approved_by}`}
        </p>
      </td>
      <td>
        <StatusBadge status={p.state} testId="preview-state" />
        {help && <p className="small muted">{help}</p>}
      </td>
      <td>
        <code title={p.head_sha}>{p.head_sha.slice(0, 7)}</code>
      </td>
      <td>
        {p.state === 'live' && urls.length > 0 ? (
          <ul className="previews-urls">
            {urls.map(([service, url]) => (
              <li key={service}>
                <a href={url} data-testid="preview-url">
                  {url}
                </a>
              </li>
            ))}
          </ul>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td>
        <Time at={p.updated_at} />
      </td>
    </tr>
  );
}
