// An in-memory server that follows docs/api.md, used by the component tests as their fetch.
// It keeps real state (agents, projects, secrets) so a test can "reload" and see what the server
// would answer, and it records every request so tests can check what left the browser.
import type { Agent, AgentEvent, Deployment, Installation, Me, Preview, Project, Repository, Secret } from '../api';

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
  /** The preview set, "project/scope/key" -> value. */
  previewSecretValues = new Map<string, string>();
  /** Production secrets ("project/scope/key") marked "also for previews". */
  sharedSecrets = new Set<string>();
  previews: Record<number, Preview[]> = {};
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
      ['POST', /^\/api\/projects\/(\d+)\/secrets\/import(\?environment=preview)?$/, (m, b) => this.withProject(m, (p) => this.importSecrets(p.id, m, b))],
      ['PUT', /^\/api\/projects\/(\d+)\/secrets\/([^/]+)\/([^/?]+)(\?environment=preview)?$/, (m, b) => this.withProject(m, (p) => this.putSecret(p.id, m, b))],
      ['PATCH', /^\/api\/projects\/(\d+)\/secrets\/([^/]+)\/([^/?]+)$/, (m, b) => this.withProject(m, (p) => this.shareSecret(p.id, m, b))],
      ['DELETE', /^\/api\/projects\/(\d+)\/secrets\/([^/]+)\/([^/?]+)(\?environment=preview)?$/, (m) => this.withProject(m, (p) => this.deleteSecret(p.id, m))],
      ['GET', /^\/api\/projects\/(\d+)\/previews$/, (m) => this.withProject(m, (p) => json(200, this.previews[p.id] ?? []))],
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
      previews_enabled: false,
      preview_agent: null,
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
    if (typeof b.previews_enabled === 'boolean') p.previews_enabled = b.previews_enabled;
    if ('preview_agent_id' in b) {
      if (b.preview_agent_id === null) p.preview_agent = null;
      else {
        const a = this.agents.find((x) => x.id === b.preview_agent_id);
        if (!a) return problem(404, 'agent not found');
        p.preview_agent = { id: a.id, name: a.name, status: a.status };
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

  private secretView(environment: 'production' | 'preview', id: string): Secret {
    const [, scope, key] = id.split('/') as [string, string, string];
    return {
      environment,
      share_with_previews: environment === 'production' && this.sharedSecrets.has(id),
      scope,
      key,
      created_at: now,
      updated_at: this.secretTimes.get(id) ?? now,
    };
  }

  private listSecrets(projectId: number): Secret[] {
    const of = (m: Map<string, string>) => [...m.keys()].filter((k) => k.startsWith(`${projectId}/`)).sort();
    return [
      ...of(this.secretValues).map((id) => this.secretView('production', id)),
      ...of(this.previewSecretValues).map((id) => this.secretView('preview', id)),
    ];
  }

  private putSecret(projectId: number, m: RegExpMatchArray, b: unknown): Response {
    const scope = decodeURIComponent(m[2]!);
    const key = decodeURIComponent(m[3]!);
    const env = m[4] ? 'preview' : 'production';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      return problem(422, 'Check the highlighted fields.', [{ field: 'key', message: 'Invalid key.' }]);
    }
    const { value, share_with_previews: share } = (b ?? {}) as { value?: unknown; share_with_previews?: unknown };
    if (typeof value !== 'string') return problem(400, 'The body needs a string value.');
    const id = `${projectId}/${scope}/${key}`;
    (env === 'preview' ? this.previewSecretValues : this.secretValues).set(id, value);
    if (env === 'production' && typeof share === 'boolean') {
      if (share) this.sharedSecrets.add(id);
      else this.sharedSecrets.delete(id);
    }
    this.secretTimes.set(id, now);
    return json(200, this.secretView(env, id));
  }

  private shareSecret(projectId: number, m: RegExpMatchArray, b: unknown): Response {
    const id = `${projectId}/${decodeURIComponent(m[2]!)}/${decodeURIComponent(m[3]!)}`;
    if (!this.secretValues.has(id)) return problem(404, 'Not found.');
    if ((b as { share_with_previews?: unknown }).share_with_previews) this.sharedSecrets.add(id);
    else this.sharedSecrets.delete(id);
    return json(200, this.secretView('production', id));
  }

  /** A small .env reader with the server's all-or-nothing rule and its per-line errors. */
  private importSecrets(projectId: number, m: RegExpMatchArray, b: unknown): Response {
    const env = m[2] ? 'preview' : 'production';
    const { dotenv, scope = 'global', share_with_previews: share } = b as { dotenv: string; scope?: string; share_with_previews?: boolean };
    const vars: [string, string][] = [];
    const errors: { field: string; message: string }[] = [];
    dotenv.split('\n').forEach((raw, i) => {
      const line = raw.trim().replace(/^export\s+/, '');
      if (line === '' || line.startsWith('#')) return;
      const eq = line.indexOf('=');
      if (eq < 0) errors.push({ field: `line ${i + 1}`, message: 'expected KEY=VALUE: there is no =' });
      else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(line.slice(0, eq).trim())) {
        errors.push({ field: `line ${i + 1}`, message: `key "${line.slice(0, eq).trim()}" must start with a letter or _ and hold only letters, digits and _` });
      } else vars.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')]);
    });
    if (errors.length > 0) return problem(400, 'nothing was imported: fix these lines and paste the file again', errors);
    const store = env === 'preview' ? this.previewSecretValues : this.secretValues;
    const out = vars.map(([key, value]) => {
      const id = `${projectId}/${scope}/${key}`;
      store.set(id, value);
      if (env === 'production' && share) this.sharedSecrets.add(id);
      return this.secretView(env, id);
    });
    return json(200, out);
  }

  private deleteSecret(projectId: number, m: RegExpMatchArray): Response {
    const id = `${projectId}/${decodeURIComponent(m[2]!)}/${decodeURIComponent(m[3]!)}`;
    if (!(m[4] ? this.previewSecretValues : this.secretValues).delete(id)) return problem(404, 'Not found.');
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
