// The dashboard's only door to the server: the JSON API written down in docs/api.md.
// Every call is same-origin with the session cookie; a 401 anywhere means the session is gone,
// so listeners (the App) switch to the sign-in page.

export interface FieldError {
  field: string;
  message: string;
}

/** An API failure in the server's one error shape, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  readonly validations: FieldError[];

  constructor(status: number, message: string, detail = '', validations: FieldError[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.validations = validations;
  }

  /** The validation message the server gave for one field, if any. */
  fieldMessage(field: string): string | undefined {
    return this.validations.find((v) => v.field === field)?.message;
  }
}

/**
 * Normalises whatever a call rejected with into an ApiError: an ApiError as it is, anything else
 * (a bug, a browser error) as a status-0 error carrying its message.
 */
export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, e instanceof Error ? e.message : String(e));
}

export interface Me {
  id: number;
  login: string;
  name: string;
  avatar_url: string;
}

export interface Installation {
  id: number;
  account: string;
  account_type: string;
}

export interface Repository {
  id: number;
  full_name: string;
  default_branch: string;
  private: boolean;
}

export type AgentStatus = 'online' | 'offline' | 'busy';

export interface Project {
  id: number;
  public_id: string;
  name: string;
  repo_id: number;
  repo_full_name: string;
  deploy_branch: string;
  /** The folder holding the project's stagely.yaml and compose file; "" is the repository root. */
  root_directory: string;
  compose_project: string;
  installation_id: number;
  agent: { id: number; name: string; status: AgentStatus } | null;
  created_at: string;
  updated_at: string;
  /** The pull request previews switch (docs/previews.md). */
  previews_enabled: boolean;
  /** The agent previews run on; null means the project's own agent. */
  preview_agent: { id: number; name: string; status: AgentStatus } | null;
}

/** What PATCH /api/projects/{id} changes; absent fields stay as they are. */
export interface ProjectPatch {
  agent_id?: number | null;
  deploy_branch?: string;
  root_directory?: string;
  previews_enabled?: boolean;
  preview_agent_id?: number | null;
}

export interface NewProject {
  installation_id: number;
  repo_id: number;
  name?: string;
  deploy_branch?: string;
  root_directory?: string;
  agent_id?: number;
}

/** The two secret sets: production deploys get one, pull request previews the other. */
export type SecretEnvironment = 'production' | 'preview';

export interface Secret {
  environment: SecretEnvironment;
  /** A production secret that previews receive too ("also for previews"). */
  share_with_previews: boolean;
  scope: string;
  key: string;
  created_at: string;
  updated_at: string;
}

export type PreviewState = 'awaiting_approval' | 'queued' | 'deploying' | 'live' | 'failed' | 'stopping' | 'stopped';

/** One pull request's preview, as GET /api/projects/{id}/previews lists it. */
export interface Preview {
  pr_number: number;
  state: PreviewState;
  head_sha: string;
  head_ref: string;
  head_repo: string;
  fork: boolean;
  author: string;
  /** Service name to its preview URL. */
  urls: Record<string, string>;
  approved_by: string;
  stop_reason: string;
  pull_request_url: string;
  created_at: string;
  updated_at: string;
  last_deployed_at: string | null;
}

export interface Deployment {
  id: number;
  sha: string;
  ref: string;
  trigger: string;
  status: string;
  error: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  check_run_url: string | null;
}

export interface Agent {
  id: number;
  name: string;
  status: AgentStatus;
  last_heartbeat: string | null;
  version: string;
  hostname: string;
  docker_version: string;
  compose_version: string;
  created_at: string;
  /** True until the agent has traded its single-use bootstrap token for its own token. */
  waiting_for_first_connection: boolean;
  /** When that bootstrap token stops working, while waiting. */
  bootstrap_expires_at: string | null;
  /** Whether the server offers this agent the build it serves (docs/agents.md, "Self-update"). */
  auto_update: boolean;
  /** The agent version this server serves; empty when unknown. */
  latest_version: string;
  version_status: 'current' | 'outdated' | 'unknown';
}

/** One line of an agent's history, from the audit log (newest first). */
export interface AgentEvent {
  id: number;
  action: string;
  actor: string;
  detail: Record<string, unknown>;
  created_at: string;
}

/** The answer to creating an agent or rotating its token: the only time the token is visible. */
export interface AgentCredentials {
  agent: Agent;
  token: string;
  cloud_init: string;
  /** One line that installs the agent on a server: export STAGELY_TOKEN=…; curl …/install.sh | sudo --preserve-env=STAGELY_TOKEN sh. */
  install_command: string;
}

/** The subset of window.fetch the client uses; tests pass an in-memory server. */
export type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

const networkMessage = 'Cannot reach the Stagely server. Check your connection and try again.';

/**
 * Waits before each new try of a request the network dropped. Only idempotent methods are
 * tried again: a dropped connection (Wi-Fi handover, a VPN reconnecting, the browser seeing
 * the machine's network change) fails one request, not the page; a POST, which creates
 * something, is never repeated.
 */
const networkRetryDelaysMs = [250, 1000];
// The API's PATCHes set fields to the values sent (docs/api.md), so they repeat safely too.
const idempotentMethods = new Set(['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']);
const signedOutMessage = 'Your session has ended. Sign in again.';

/** Turns a non-2xx response into an ApiError, tolerating bodies that are not the error shape. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const fallback =
    res.status === 401
      ? signedOutMessage
      : res.status >= 500
        ? `The server could not answer (${res.status}). Try again shortly.`
        : `The request was refused (${res.status}).`;
  if (typeof body !== 'object' || body === null) {
    return new ApiError(res.status, fallback);
  }
  const b = body as Record<string, unknown>;
  const message = typeof b.message === 'string' && b.message !== '' ? b.message : fallback;
  const detail = typeof b.detail === 'string' ? b.detail : '';
  const validations = Array.isArray(b.validations)
    ? b.validations.flatMap((v: unknown): FieldError[] => {
        if (typeof v !== 'object' || v === null) return [];
        const { field, message: m } = v as Record<string, unknown>;
        return typeof field === 'string' && typeof m === 'string' ? [{ field, message: m }] : [];
      })
    : [];
  return new ApiError(res.status, message, detail, validations);
}

const seg = encodeURIComponent;

const secretPath = (projectId: number, scope: string, key: string) =>
  `/api/projects/${projectId}/secrets/${seg(scope)}/${seg(key)}`;

/** The query naming a secret set; production is the server's default, so it needs none. */
const setQuery = (environment?: SecretEnvironment) => (environment === 'preview' ? '?environment=preview' : '');

/** A typed client for docs/api.md. */
export class ApiClient {
  private readonly fetchFn: FetchFn;
  private readonly signedOutListeners = new Set<() => void>();

  constructor(fetchFn?: FetchFn) {
    // Bound late so tests that replace window.fetch after construction still reach the fake.
    this.fetchFn = fetchFn ?? ((input, init) => fetch(input, init));
  }

  /** Calls fn whenever the server says the session is gone; returns the unsubscribe function. */
  onSignedOut(fn: () => void): () => void {
    this.signedOutListeners.add(fn);
    return () => this.signedOutListeners.delete(fn);
  }

  private async send(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const init: RequestInit = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await this.fetchWithRetry(method, path, init);
    if (res.status === 401) {
      const err = await errorFromResponse(res);
      this.signedOutListeners.forEach((fn) => fn());
      throw err;
    }
    if (!res.ok) {
      throw await errorFromResponse(res);
    }
    return res;
  }

  private async fetchWithRetry(method: string, path: string, init: RequestInit): Promise<Response> {
    const delays = idempotentMethods.has(method) ? networkRetryDelaysMs : [];
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetchFn(path, init);
      } catch {
        const delay = delays[attempt];
        if (delay === undefined) throw new ApiError(0, networkMessage);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    try {
      return (await res.json()) as T;
    } catch {
      throw new ApiError(res.status, 'The server sent an answer the dashboard cannot read.');
    }
  }

  private async empty(method: string, path: string, body?: unknown): Promise<void> {
    await this.send(method, path, body);
  }

  me(): Promise<Me> {
    return this.json('GET', '/api/me');
  }

  /** Ends the session on the server; the caller shows the sign-in page afterwards. */
  signOut(): Promise<void> {
    return this.empty('POST', '/auth/logout');
  }

  installations(): Promise<Installation[]> {
    return this.json('GET', '/api/installations');
  }

  repositories(installationId: number): Promise<Repository[]> {
    return this.json('GET', `/api/installations/${installationId}/repositories`);
  }

  projects(): Promise<Project[]> {
    return this.json('GET', '/api/projects');
  }

  project(id: number): Promise<Project> {
    return this.json('GET', `/api/projects/${id}`);
  }

  createProject(p: NewProject): Promise<Project> {
    return this.json('POST', '/api/projects', p);
  }

  updateProject(id: number, patch: ProjectPatch): Promise<Project> {
    return this.json('PATCH', `/api/projects/${id}`, patch);
  }

  deleteProject(id: number): Promise<void> {
    return this.empty('DELETE', `/api/projects/${id}`);
  }

  secrets(projectId: number): Promise<Secret[]> {
    return this.json('GET', `/api/projects/${projectId}/secrets`);
  }

  /**
   * Creates or replaces a secret of a set (production unless said). The value goes to the server
   * and nowhere else. share left out keeps a replaced secret's "also for previews" mark.
   */
  putSecret(
    projectId: number,
    scope: string,
    key: string,
    value: string,
    opts: { environment?: SecretEnvironment; share?: boolean } = {},
  ): Promise<Secret> {
    const body: { value: string; share_with_previews?: boolean } = { value };
    if (opts.share !== undefined) body.share_with_previews = opts.share;
    return this.json('PUT', secretPath(projectId, scope, key) + setQuery(opts.environment), body);
  }

  /** Marks or unmarks a production secret for previews, without its value. */
  shareSecret(projectId: number, scope: string, key: string, share: boolean): Promise<Secret> {
    return this.json('PATCH', secretPath(projectId, scope, key), { share_with_previews: share });
  }

  /** Stores every variable of a pasted .env file in one set, all or none (docs/api.md). */
  importSecrets(
    projectId: number,
    environment: SecretEnvironment,
    dotenv: string,
    opts: { scope?: string; share?: boolean } = {},
  ): Promise<Secret[]> {
    const body: { dotenv: string; scope?: string; share_with_previews?: boolean } = { dotenv };
    if (opts.scope) body.scope = opts.scope;
    if (opts.share !== undefined) body.share_with_previews = opts.share;
    return this.json('POST', `/api/projects/${projectId}/secrets/import` + setQuery(environment), body);
  }

  deleteSecret(projectId: number, scope: string, key: string, environment: SecretEnvironment = 'production'): Promise<void> {
    return this.empty('DELETE', secretPath(projectId, scope, key) + setQuery(environment));
  }

  previews(projectId: number): Promise<Preview[]> {
    return this.json('GET', `/api/projects/${projectId}/previews`);
  }

  deployments(projectId: number): Promise<Deployment[]> {
    return this.json('GET', `/api/projects/${projectId}/deployments`);
  }

  agents(): Promise<Agent[]> {
    return this.json('GET', '/api/agents');
  }

  createAgent(name: string): Promise<AgentCredentials> {
    return this.json('POST', '/api/agents', { name });
  }

  rotateAgentToken(id: number): Promise<AgentCredentials> {
    return this.json('POST', `/api/agents/${id}/rotate-token`);
  }

  agentEvents(id: number): Promise<AgentEvent[]> {
    return this.json('GET', `/api/agents/${id}/events`);
  }

  setAgentAutoUpdate(id: number, on: boolean): Promise<Agent> {
    return this.json('PATCH', `/api/agents/${id}`, { auto_update: on });
  }

  deleteAgent(id: number): Promise<void> {
    return this.empty('DELETE', `/api/agents/${id}`);
  }
}
