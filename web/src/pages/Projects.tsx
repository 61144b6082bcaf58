// The list of the user's projects: one branch of one repository, deployed by one agent.
import { useApi } from '../context';
import { Link } from '../router';
import { useResource } from '../resource';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { StatusBadge } from '../components/StatusBadge';
import { Time } from '../components/Time';

export function ProjectsPage() {
  const api = useApi();
  const projects = useResource(() => api.projects(), 'projects');

  return (
    <section>
      <div className="heading">
        <h1>Projects</h1>
        <Link to="/projects/new" className="button primary" data-testid="new-project-button">
          New project
        </Link>
      </div>
      {projects.status === 'loading' && <Loading what="projects" />}
      {projects.status === 'error' && <ErrorMessage error={projects.error} onRetry={projects.reload} />}
      {projects.status === 'ready' && projects.data.length === 0 && (
        <Empty testId="projects-empty">
          <p>
            <strong>No projects yet.</strong> A project deploys one branch of one GitHub repository with Docker Compose
            on one of your servers.
          </p>
          <ol>
            <li>
              Install the Stagely GitHub App on the account or organisation that owns the repository.
            </li>
            <li>
              On the <Link to="/agents">Agents</Link> page, create an agent and run its cloud-init on your server.
            </li>
            <li>
              Choose <Link to="/projects/new">New project</Link>, pick the repository and link the agent. Every push to
              the deploy branch then deploys.
            </li>
          </ol>
        </Empty>
      )}
      {projects.status === 'ready' && projects.data.length > 0 && (
        <table className="list" data-testid="projects-list">
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Repository</th>
              <th scope="col">Branch</th>
              <th scope="col">Agent</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {projects.data.map((p) => (
              <tr key={p.id} data-testid="project-row">
                <td>
                  <Link to={`/projects/${p.id}`}>{p.name}</Link>
                </td>
                <td>
                  {p.repo_full_name}
                  {p.root_directory && <span className="muted"> / {p.root_directory}</span>}
                </td>
                <td>
                  <code>{p.deploy_branch}</code>
                </td>
                <td>
                  {p.agent ? (
                    <>
                      {p.agent.name} <StatusBadge status={p.agent.status} />
                    </>
                  ) : (
                    <span className="muted">none linked</span>
                  )}
                </td>
                <td>
                  <Time at={p.updated_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
