// A project's recent deployments, newest first, refreshed while the page is open.
import { useApi } from '../context';
import { useResource } from '../resource';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { StatusBadge } from '../components/StatusBadge';
import { Time } from '../components/Time';

const triggerText: Record<string, string> = {
  push: 'push',
  rerun: 're-run',
  rerun_all: 're-run all',
  redeploy: 'redeploy',
  rollback: 'roll back',
  manual: 'manual',
};

export function DeploymentsSection({ projectId, pollMs }: { projectId: number; pollMs?: number }) {
  const api = useApi();
  const deployments = useResource(() => api.deployments(projectId), `deployments:${projectId}`, pollMs);

  return (
    <section aria-labelledby="deployments-heading" className="card">
      <h2 id="deployments-heading">Recent deployments</h2>
      {deployments.status === 'loading' && <Loading what="deployments" />}
      {deployments.status === 'error' && <ErrorMessage error={deployments.error} onRetry={deployments.reload} />}
      {deployments.data?.length === 0 && (
        <Empty testId="deployments-empty">
          <p>No deployments yet. Link an agent, then push to the deploy branch: the deployment shows up here and on GitHub.</p>
        </Empty>
      )}
      {deployments.data && deployments.data.length > 0 && (
        <table className="list" data-testid="deployments-list">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Status</th>
              <th scope="col">Commit</th>
              <th scope="col">Trigger</th>
              <th scope="col">Started</th>
              <th scope="col">On GitHub</th>
            </tr>
          </thead>
          <tbody>
            {deployments.data.map((d) => (
              <tr key={d.id} data-testid="deployment-row">
                <td>{d.id}</td>
                <td>
                  <StatusBadge status={d.status} testId="deployment-status" />
                  {d.error && <p className="muted small">{d.error}</p>}
                </td>
                <td>
                  <code title={d.sha}>{d.sha.slice(0, 7)}</code> <span className="muted">{d.ref.replace(/^refs\/heads\//, '')}</span>
                </td>
                <td>{triggerText[d.trigger] ?? d.trigger}</td>
                <td>
                  <Time at={d.started_at ?? d.created_at} />
                </td>
                <td>
                  {d.check_run_url ? (
                    <a href={d.check_run_url} target="_blank" rel="noopener noreferrer">
                      Check run<span className="visually-hidden"> for deployment {d.id}</span>
                    </a>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
