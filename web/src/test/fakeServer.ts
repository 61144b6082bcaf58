// An in-memory server that follows docs/api.md, used by the component tests as their fetch.
// It keeps real state (agents, projects, secrets) so a test can "reload" and see what the server
// would answer, and it records every request so tests can check what left the browser.
import type { Agent, AgentEvent, Deployment, Installation, Me, Project, Repository } from '../api';

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  init: RequestInit;
}

type Handler = (m: RegExpMatchArray, body: unknown) => Response;

const now = '2026-01-02T03:04:05Z';

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

function problem(status: number, message: string, validations: { field: string; message: string }[] = []): Response {
  return json(status, { message, ...(validations.length ? { validations } : {}) });
}

export class FakeServer {
  signedIn = true;
  me: Me = { id: 1, login: 'octocat', name: 'The Octocat', avatar_url: '' };
  installations: Installation[] = [{ id: 100, account: 'octo-org', account_type: 'Organization' }];
  repositories: Record<number, Repository[]> = {
    100: [{ id: 7, full_name: 'octo-org/Hello.World', default_branch: 'main', private: false }],
  };
  projects: Project[] = [];
  agents: Agent[] = [];
  /** Each agent's history by agent id, newest first. */
  agentEvents: Record<number, AgentEvent[]> = {};
  secretValues = new Map<string, string>(); // "project/scope/key" -> value, as the server stores it
  secretTimes = new Map<string, string>();
  deployments: Record<number, Deployment[]> = {};
  requests: RecordedRequest[] = [];
  private nextId = 1;
  private tokenCounter = 0;
  private readonly routes: [string, RegExp, Handler][];

  constructor() {
    this.routes = [
      ['GET', /^\/api\/me$/, () => json(200, this.me)],
      ['POST', /^\/auth\/logout$/, () => ((this.signedIn = false), new Response(null, { status: 204 }))],
      ['GET', /^\/api\/installations$/, () => json(200, this.installations)],
      ['GET', /^\/api\/installations\/(\d+)\/repositories$/, (m) => this.listRepos(Number(m[1]))],
      ['GET', /^\/api\/projects$/, () => json(200, this.projects)],
      ['POST', /^\/api\/projects$/, (_, b) => this.createProject(b as Record<string, unknown>)],
      ['GET', /^\/api\/projects\/(\d+)$/, (m) => this.withProject(m, (p) => json(200, p))],
      ['PATCH', /^\/api\/projects\/(\d+)$/, (m, b) => this.withProject(m, (p) => this.patchProject(p, b as Record<string, unknown>))],
      ['DELETE', /^\/api\/projects\/(\d+)$/, (m) => this.withProject(m, (p) => this.deleteProject(p))],
      ['GET', /^\/api\/projects\/(\d+)\/secrets$/, (m) => this.withProject(m, (p) => json(200, this.listSecrets(p.id)))],
      ['PUT', /^\/api\/projects\/(\d+)\/secrets\/([^/]+)\/([^/]+)$/, (m, b) => this.withProject(m, (p) => this.putSecret(p.id, m, b))],
      ['DELETE', /^\/api\/projects\/(\d+)\/secrets\/([^/]+)\/([^/]+)$/, (m) => this.withProject(m, (p) => this.deleteSecret(p.id, m))],
      ['GET', /^\/api\/projects\/(\d+)\/deployments$/, (m) => this.withProject(m, (p) => json(200, this.deployments[p.id] ?? []))],
      ['GET', /^\/api\/agents$/, () => json(200, this.agents)],
      ['POST', /^\/api\/agents$/, (_, b) => this.createAgent(b as Record<string, unknown>)],
      ['POST', /^\/api\/agents\/(\d+)\/rotate-token$/, (m) => this.withAgent(m, (a) => json(200, this.credentials(a)))],
      ['GET', /^\/api\/agents\/(\d+)\/events$/, (m) => this.withAgent(m, (a) => json(200, this.agentEvents[a.id] ?? []))],
      ['DELETE', /^\/api\/agents\/(\d+)$/, (m) => this.withAgent(m, (a) => this.deleteAgent(a))],
      ['PATCH', /^\/api\/agents\/(\d+)$/, (m, b) => this.withAgent(m, (a) => this.patchAgent(a, b as Record<string, unknown>))],
    ];
  }

  /** The fetch function handed to ApiClient. */
  fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const method = init.method ?? 'GET';
    const body = typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined;
    this.requests.push({ method, path: input, body, init });
    if (!this.signedIn) return problem(401, 'Sign in to continue.');
    for (const [m, re, handler] of this.routes) {
      const match = input.match(re);
      if (match && m === method) return handler(match, body);
    }
    return problem(404, 'Not found.');
  };

  addProject(p: Partial<Project> = {}): Project {
    const project: Project = {
      id: this.nextId++,
      public_id: 'prj_test',
      name: 'hello-world',
      repo_id: 7,
      repo_full_name: 'octo-org/Hello.World',
      deploy_branch: 'main',
      root_directory: '',
      compose_project: 'hello-world',
      installation_id: 100,
      agent: null,
      created_at: now,
      updated_at: now,
      ...p,
    };
    this.projects.push(project);
    return project;
  }

  addAgent(a: Partial<Agent> = {}): Agent {
    const agent: Agent = {
      id: this.nextId++,
      name: 'web-1',
      status: 'offline',
      last_heartbeat: null,
      version: '',
      hostname: '',
      docker_version: '',
      compose_version: '',
      created_at: now,
      waiting_for_first_connection: false,
      bootstrap_expires_at: null,
      auto_update: true,
      latest_version: 'v1.3.0',
      version_status: 'unknown',
      ...a,
    };
    this.agents.push(agent);
    return agent;
  }

  private listRepos(installationId: number): Response {
    const repos = this.repositories[installationId];
    return repos ? json(200, repos) : problem(404, 'Not found.');
  }

  private withProject(m: RegExpMatchArray, fn: (p: Project) => Response): Response {
    const p = this.projects.find((x) => x.id === Number(m[1]));
    return p ? fn(p) : problem(404, 'Not found.');
  }

  private withAgent(m: RegExpMatchArray, fn: (a: Agent) => Response): Response {
    const a = this.agents.find((x) => x.id === Number(m[1]));
    return a ? fn(a) : problem(404, 'Not found.');
  }

  private createProject(b: Record<string, unknown>): Response {
    const repo = (this.repositories[Number(b.installation_id)] ?? []).find((r) => r.id === b.repo_id);
    if (!repo) return problem(422, 'Check the highlighted fields.', [{ field: 'repo_id', message: 'No such repository.' }]);
    const name = typeof b.name === 'string' ? b.name : repo.full_name.split('/')[1]!.toLowerCase().replace(/[^a-z0-9_-]/g, '');
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) {
      return problem(422, 'Check the highlighted fields.', [{ field: 'name', message: 'Invalid project name.' }]);
    }
    const agent = this.agents.find((a) => a.id === b.agent_id);
    const p = this.addProject({
      name,
      repo_id: repo.id,
      repo_full_name: repo.full_name,
      deploy_branch: typeof b.deploy_branch === 'string' ? b.deploy_branch : repo.default_branch,
      root_directory: typeof b.root_directory === 'string' ? cleanRoot(b.root_directory) : '',
      compose_project: name,
      installation_id: Number(b.installation_id),
      agent: agent ? { id: agent.id, name: agent.name, status: agent.status } : null,
    });
    return json(201, p);
  }

  private patchProject(p: Project, b: Record<string, unknown>): Response {
    if ('agent_id' in b) {
      if (b.agent_id === null) p.agent = null;
      else {
        const a = this.agents.find((x) => x.id === b.agent_id);
        if (!a) return problem(422, 'Check the highlighted fields.', [{ field: 'agent_id', message: 'No such agent.' }]);
        p.agent = { id: a.id, name: a.name, status: a.status };
      }
    }
    if (typeof b.deploy_branch === 'string') p.deploy_branch = b.deploy_branch;
    if (typeof b.root_directory === 'string') {
      if (b.root_directory.startsWith('/') || b.root_directory.split('/').includes('..')) {
        return problem(400, 'the project cannot be changed as sent', [
          { field: 'root_directory', message: 'must be relative to the repository root, like services/api (no leading /)' },
        ]);
      }
      p.root_directory = cleanRoot(b.root_directory);
    }
    return json(200, p);
  }

  private deleteProject(p: Project): Response {
    this.projects = this.projects.filter((x) => x.id !== p.id);
    return new Response(null, { status: 204 });
  }

  private listSecrets(projectId: number) {
    return [...this.secretValues.keys()]
      .filter((k) => k.startsWith(`${projectId}/`))
      .map((k) => {
        const [, scope, key] = k.split('/');
        return { scope, key, created_at: now, updated_at: this.secretTimes.get(k) ?? now };
      });
  }

  private putSecret(projectId: number, m: RegExpMatchArray, b: unknown): Response {
    const scope = decodeURIComponent(m[2]!);
    const key = decodeURIComponent(m[3]!);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      return problem(422, 'Check the highlighted fields.', [{ field: 'key', message: 'Invalid key.' }]);
    }
    const value = (b as { value?: unknown } | undefined)?.value;
    if (typeof value !== 'string') return problem(400, 'The body needs a string value.');
    const id = `${projectId}/${scope}/${key}`;
    this.secretValues.set(id, value);
    this.secretTimes.set(id, now);
    return json(200, { scope, key, created_at: now, updated_at: now });
  }

  private deleteSecret(projectId: number, m: RegExpMatchArray): Response {
    const id = `${projectId}/${decodeURIComponent(m[2]!)}/${decodeURIComponent(m[3]!)}`;
    if (!this.secretValues.delete(id)) return problem(404, 'Not found.');
    return new Response(null, { status: 204 });
  }

  private createAgent(b: Record<string, unknown>): Response {
    const name = typeof b.name === 'string' ? b.name : '';
    if (name.length < 1 || name.length > 100) {
      return problem(422, 'Check the highlighted fields.', [{ field: 'name', message: 'Use 1 to 100 characters.' }]);
    }
    return json(201, this.credentials(this.addAgent({ name })));
  }

  private credentials(agent: Agent) {
    this.tokenCounter++;
    const token = `stgb_agent_${agent.id}_${this.tokenCounter}_Zq8x`;
    agent.waiting_for_first_connection = true;
    agent.bootstrap_expires_at = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
    return {
      agent,
      token,
      cloud_init: `#cloud-config\nwrite_files:\n  - path: /etc/stagely/config.json\n    content: '{"server_url":"https://stagely.example","token":"${token}"}'\n`,
      install_command: `export STAGELY_TOKEN=${token}; curl -fsSL https://stagely.example/install.sh | sudo --preserve-env=STAGELY_TOKEN sh`,
    };
  }

  private patchAgent(a: Agent, b: Record<string, unknown>): Response {
    if (typeof b.auto_update !== 'boolean') {
      return problem(400, 'nothing to change', [{ field: 'auto_update', message: 'is required: true or false' }]);
    }
    a.auto_update = b.auto_update;
    return json(200, a);
  }

  private deleteAgent(a: Agent): Response {
    this.agents = this.agents.filter((x) => x.id !== a.id);
    for (const p of this.projects) if (p.agent?.id === a.id) p.agent = null;
    return new Response(null, { status: 204 });
  }
}

/** The server's cleaning of a root directory (stagelyyaml.CleanRootDirectory), for plain input. */
function cleanRoot(s: string): string {
  return s
    .trim()
    .replace(/^\.\/?/, '')
    .replace(/\/+$/, '');
}
