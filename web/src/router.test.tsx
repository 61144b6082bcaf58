import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { matchRoute, type Route } from './router';
import { FakeServer } from './test/fakeServer';
import { renderApp } from './test/render';

describe('matchRoute', () => {
  it.each<[string, Route]>([
    ['/', { page: 'projects' }],
    ['/projects', { page: 'projects' }],
    ['/projects/', { page: 'projects' }],
    ['/projects/new', { page: 'newProject' }],
    ['/projects/12', { page: 'project', id: 12 }],
    ['/projects/12/', { page: 'project', id: 12 }],
    ['/agents', { page: 'agents' }],
    ['/projects/012', { page: 'notFound', path: '/projects/012' }],
    ['/projects/abc', { page: 'notFound', path: '/projects/abc' }],
    ['/projects/12/secrets', { page: 'notFound', path: '/projects/12/secrets' }],
    ['/settings', { page: 'notFound', path: '/settings' }],
  ])('%s', (path, want) => {
    expect(matchRoute(path)).toEqual(want);
  });
});

describe('routing in the app', () => {
  it('falls back to a not-found page with a way home for unknown paths', async () => {
    const server = new FakeServer();
    renderApp(server, '/no/such/page');
    const page = await screen.findByTestId('not-found');
    expect(page.textContent).toContain('/no/such/page');
    expect(screen.getByRole('link', { name: 'Go to your projects' }).getAttribute('href')).toBe('/projects');
  });

  it('a deep link to a project opens that project', async () => {
    const server = new FakeServer();
    server.addProject({ name: 'shop' });
    const p = server.addProject({ name: 'blog' });
    renderApp(server, `/projects/${p.id}`);
    expect((await screen.findByRole('heading', { level: 1 })).textContent).toBe('blog');
  });

  it('a project that is not the user\'s shows the server message', async () => {
    const server = new FakeServer();
    renderApp(server, '/projects/999');
    expect((await screen.findByTestId('error-message')).textContent).toContain('Not found.');
  });

  it('links navigate without a reload and Back returns', async () => {
    const server = new FakeServer();
    const p = server.addProject({ name: 'blog' });
    const user = userEvent.setup();
    renderApp(server, '/');

    await user.click(await screen.findByRole('link', { name: 'blog' }));
    expect(window.location.pathname).toBe(`/projects/${p.id}`);
    expect((await screen.findByRole('heading', { level: 1 })).textContent).toBe('blog');

    await user.click(screen.getByRole('link', { name: 'Agents' }));
    expect(await screen.findByRole('heading', { level: 1, name: 'Agents' })).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Agents' }).getAttribute('aria-current')).toBe('page');

    window.history.back();
    expect((await screen.findByRole('heading', { level: 1, name: 'blog' })).textContent).toBe('blog');
  });
});
