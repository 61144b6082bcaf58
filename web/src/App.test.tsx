import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { FakeServer } from './test/fakeServer';
import { renderApp } from './test/render';

describe('session', () => {
  it('shows sign-in with GitHub when /api/me answers 401', async () => {
    const server = new FakeServer();
    server.signedIn = false;
    renderApp(server, '/projects');
    const link = await screen.findByRole('link', { name: 'Sign in with GitHub' });
    expect(link.getAttribute('href')).toBe('/auth/github/login');
    expect(screen.queryByTestId('nav-user')).toBeNull();
  });

  it('sign out posts /auth/logout and shows sign-in', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    renderApp(server, '/projects');

    expect((await screen.findByTestId('nav-user')).textContent).toBe('octocat');
    await user.click(screen.getByRole('button', { name: 'Sign out' }));
    await screen.findByTestId('sign-in-link');
    expect(server.requests.some((r) => r.method === 'POST' && r.path === '/auth/logout')).toBe(true);
  });

  it('a session that ends mid-use switches to sign-in', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    renderApp(server, '/projects');
    await screen.findByTestId('projects-empty');

    server.signedIn = false;
    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'Agents' }));
    await screen.findByTestId('sign-in-link');
  });

  it('an unreachable server shows the error with a retry that recovers', async () => {
    const server = new FakeServer();
    const real = server.fetch;
    let down = true;
    server.fetch = async (input, init) => {
      if (down) throw new TypeError('Failed to fetch');
      return real(input, init);
    };
    const user = userEvent.setup();
    renderApp(server, '/projects');

    expect((await screen.findByRole('alert')).textContent).toContain('Cannot reach the Stagely server');
    down = false;
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    await screen.findByTestId('nav-user');
  });
});

describe('projects', () => {
  it('the empty state explains how to add a project', async () => {
    renderApp(new FakeServer(), '/projects');
    const empty = await screen.findByTestId('projects-empty');
    expect(empty.textContent).toContain('Install the Stagely GitHub App');
    expect(empty.textContent).toContain('create an agent');
  });

  it('creates a project from an installation and repository and opens it', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({ name: 'web-1', status: 'online' });
    const user = userEvent.setup();
    renderApp(server, '/projects');

    await user.click(await screen.findByTestId('new-project-button'));
    await user.selectOptions(await screen.findByLabelText('GitHub account'), '100');
    await waitFor(() => expect(screen.getByLabelText<HTMLSelectElement>('Repository').disabled).toBe(false));
    await user.selectOptions(screen.getByLabelText('Repository'), '7');
    expect(screen.getByLabelText<HTMLInputElement>('Name (optional)').placeholder).toBe('helloworld');
    expect(screen.getByLabelText<HTMLInputElement>('Deploy branch (optional)').placeholder).toBe('main');
    await user.selectOptions(screen.getByLabelText('Agent (optional)'), String(agent.id));
    await user.click(screen.getByRole('button', { name: 'Create project' }));

    expect((await screen.findByRole('heading', { level: 1, name: 'helloworld' })).textContent).toBe('helloworld');
    expect(window.location.pathname).toBe(`/projects/${server.projects[0]!.id}`);
    const post = server.requests.find((r) => r.method === 'POST' && r.path === '/api/projects');
    expect(post?.body).toEqual({ installation_id: 100, repo_id: 7, agent_id: agent.id });
  });

  it('creates a project in a root directory of the repository', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    renderApp(server, '/projects/new');

    await user.selectOptions(await screen.findByLabelText('GitHub account'), '100');
    await waitFor(() => expect(screen.getByLabelText<HTMLSelectElement>('Repository').disabled).toBe(false));
    await user.selectOptions(screen.getByLabelText('Repository'), '7');
    await user.type(screen.getByLabelText('Name (optional)'), 'api');
    await user.type(screen.getByLabelText('Root directory (optional)'), 'services/api');
    await user.click(screen.getByRole('button', { name: 'Create project' }));

    expect((await screen.findByTestId('project-root-directory')).textContent).toBe('services/api');
    const post = server.requests.find((r) => r.method === 'POST' && r.path === '/api/projects');
    expect(post?.body).toEqual({ installation_id: 100, repo_id: 7, name: 'api', root_directory: 'services/api' });
  });

  it('shows the API validation messages next to their fields', async () => {
    const server = new FakeServer();
    const real = server.fetch;
    server.fetch = async (input, init) =>
      init.method === 'POST' && input === '/api/projects'
        ? new Response(
            JSON.stringify({
              message: 'Check the highlighted fields.',
              validations: [
                { field: 'deploy_branch', message: 'Branch "nope" does not exist.' },
                { field: 'name', message: 'A project named "blog" already exists.' },
              ],
            }),
            { status: 422 },
          )
        : real(input, init);
    const user = userEvent.setup();
    renderApp(server, '/projects/new');

    await user.selectOptions(await screen.findByLabelText('GitHub account'), '100');
    await waitFor(() => expect(screen.getByLabelText<HTMLSelectElement>('Repository').disabled).toBe(false));
    await user.selectOptions(screen.getByLabelText('Repository'), '7');
    await user.type(screen.getByLabelText('Name (optional)'), 'blog');
    await user.type(screen.getByLabelText('Deploy branch (optional)'), 'nope{Enter}');

    expect((await screen.findByTestId('project-deploy_branch-error')).textContent).toBe('Branch "nope" does not exist.');
    expect(screen.getByTestId('project-name-error').textContent).toBe('A project named "blog" already exists.');
    expect(screen.getByLabelText('Name (optional)').getAttribute('aria-describedby')).toContain('project-name-error');
  });

  it('no installations explains that the GitHub App must be installed', async () => {
    const server = new FakeServer();
    server.installations = [];
    renderApp(server, '/projects/new');
    expect((await screen.findByTestId('installations-empty')).textContent).toContain('not installed');
  });
});

describe('project page', () => {
  it('links an agent with PATCH and shows deployments with status, short sha, trigger and check run link', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({ name: 'web-1', status: 'online' });
    const p = server.addProject({ name: 'blog' });
    server.deployments[p.id] = [
      {
        id: 12,
        sha: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
        ref: 'refs/heads/main',
        trigger: 'push',
        status: 'success',
        error: '',
        created_at: '2026-01-02T03:04:05Z',
        started_at: '2026-01-02T03:04:06Z',
        finished_at: '2026-01-02T03:04:30Z',
        check_run_url: 'https://github.com/octo-org/Hello.World/runs/99',
      },
    ];
    const user = userEvent.setup();
    renderApp(server, `/projects/${p.id}`);

    const row = await screen.findByTestId('deployment-row');
    expect(row.textContent).toContain('a1b2c3d');
    expect(row.textContent).not.toContain('a1b2c3d4');
    expect(row.textContent).toContain('push');
    expect(screen.getByTestId('deployment-status').textContent).toBe('success');
    expect(screen.getByRole('link', { name: 'Check run for deployment 12' }).getAttribute('href')).toBe(
      'https://github.com/octo-org/Hello.World/runs/99',
    );

    await user.selectOptions(await screen.findByTestId('project-agent-select'), String(agent.id));
    await screen.findByText('Saved.');
    expect(server.projects[0]!.agent?.id).toBe(agent.id);
    expect(server.requests.find((r) => r.method === 'PATCH')?.body).toEqual({ agent_id: agent.id });
  });

  it('shows the root directory and changes it with PATCH, with the API\'s message next to it', async () => {
    const server = new FakeServer();
    const p = server.addProject({ name: 'api' });
    const user = userEvent.setup();
    renderApp(server, `/projects/${p.id}`);

    expect((await screen.findByTestId('project-root-directory')).textContent).toBe('/');
    await user.click(screen.getByTestId('project-root-directory-edit'));
    await user.type(screen.getByLabelText('Root directory'), '/srv/api{Enter}');
    expect((await screen.findByTestId('project-root-directory-error')).textContent).toContain('no leading /');
    expect(server.projects[0]!.root_directory).toBe('');

    await user.clear(screen.getByLabelText('Root directory'));
    await user.type(screen.getByLabelText('Root directory'), './services/api/{Enter}');
    expect((await screen.findByTestId('project-root-directory')).textContent).toBe('services/api');
    expect(server.requests.filter((r) => r.method === 'PATCH').map((r) => r.body)).toEqual([
      { root_directory: '/srv/api' },
      { root_directory: './services/api/' },
    ]);
  });

  it('no deployments yet says what to do', async () => {
    const server = new FakeServer();
    const p = server.addProject();
    renderApp(server, `/projects/${p.id}`);
    expect((await screen.findByTestId('deployments-empty')).textContent).toContain('push to the deploy branch');
  });
});
