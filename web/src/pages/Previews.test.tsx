import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { Preview } from '../api';
import { FakeServer } from '../test/fakeServer';
import { everythingOnPage, renderApp } from '../test/render';

const at = '2026-01-02T03:04:05Z';

function preview(p: Partial<Preview>): Preview {
  return {
    pr_number: 1,
    state: 'live',
    head_sha: 'abcdef1234567890abcdef1234567890abcdef12',
    head_ref: 'feature',
    head_repo: 'octo-org/Hello.World',
    fork: false,
    author: 'mona',
    urls: {},
    approved_by: '',
    stop_reason: '',
    pull_request_url: 'https://github.com/octo-org/Hello.World/pull/1',
    created_at: at,
    updated_at: at,
    last_deployed_at: null,
    ...p,
  };
}

describe('pull request previews', () => {
  it('switches previews on and picks the preview agent with PATCH, and a reload shows both', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({ name: 'preview-box', status: 'online' });
    const project = server.addProject();
    const user = userEvent.setup();
    const first = renderApp(server, `/projects/${project.id}`);

    const toggle = await screen.findByRole('switch', { name: 'Deploy a preview of every pull request' });
    expect(toggle).toHaveProperty('checked', false);
    await user.click(toggle);
    await waitFor(() => expect(screen.getByTestId('previews-saved').textContent).toBe('Saved.'));
    expect(toggle).toHaveProperty('checked', true);

    await user.selectOptions(await screen.findByLabelText('Previews run on'), String(agent.id));
    await waitFor(() => expect(project.preview_agent?.id).toBe(agent.id));
    const patches = server.requests.filter((r) => r.method === 'PATCH').map((r) => r.body);
    expect(patches).toEqual([{ previews_enabled: true }, { preview_agent_id: agent.id }]);
    first.unmount();

    renderApp(server, `/projects/${project.id}`);
    expect(await screen.findByRole('switch')).toHaveProperty('checked', true);
    await waitFor(() => expect(screen.getByLabelText('Previews run on')).toHaveProperty('value', String(agent.id)));
    await user.selectOptions(screen.getByLabelText('Previews run on'), '');
    await waitFor(() => expect(project.preview_agent).toBeNull());
  });

  it('flips the switch at once and back when the server refuses', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);
    const toggle = await screen.findByRole('switch', { name: 'Deploy a preview of every pull request' });
    server.projects = []; // deleted in another tab: the PATCH answers 404
    await user.click(toggle);
    await waitFor(() => expect(server.requests.some((r) => r.method === 'PATCH')).toBe(true));
    await waitFor(() => expect(toggle).toHaveProperty('checked', false));
    expect(screen.queryByTestId('previews-saved')?.textContent ?? '').not.toBe('Saved.');
  });

  it('lists previews with queued and awaiting approval shown as such, and URLs only when live', async () => {
    const server = new FakeServer();
    const project = server.addProject({ previews_enabled: true });
    server.previews[project.id] = [
      preview({ pr_number: 9, state: 'awaiting_approval', fork: true, head_repo: 'mallory/Hello.World', author: 'mallory' }),
      preview({ pr_number: 8, state: 'queued' }),
      preview({ pr_number: 7, state: 'live', urls: { web: 'https://web--pr-7--hello.preview.example.com' }, approved_by: 'octocat', fork: true, head_repo: 'carol/Hello.World' }),
      preview({ pr_number: 3, state: 'stopped', stop_reason: 'pull request closed', urls: { web: 'https://web--pr-3--hello.preview.example.com' } }),
    ];
    renderApp(server, `/projects/${project.id}`);

    const rows = await screen.findAllByTestId('preview-row');
    expect(rows.map((r) => [r.dataset.pr, within(r).getByTestId('preview-state').textContent])).toEqual([
      ['9', 'awaiting approval'],
      ['8', 'queued'],
      ['7', 'live'],
      ['3', 'stopped'],
    ]);
    expect(rows[0]!.textContent).toContain('from the fork mallory/Hello.World');
    expect(rows[0]!.textContent).toContain('Deploy preview');
    expect(rows[1]!.textContent).toContain('waiting for a free preview slot');
    expect(rows[2]!.textContent).toContain('approved by octocat');
    expect(within(rows[2]!).getByTestId('preview-url').getAttribute('href')).toBe('https://web--pr-7--hello.preview.example.com');
    expect(within(rows[3]!).queryByTestId('preview-url')).toBeNull();
    expect(rows[3]!.textContent).toContain('pull request closed');
    expect(within(rows[2]!).getByRole('link', { name: '#7' }).getAttribute('href')).toBe('https://github.com/octo-org/Hello.World/pull/1');
  });

  it('says what to do when there are no previews', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    renderApp(server, `/projects/${project.id}`);
    expect((await screen.findByTestId('previews-empty')).textContent).toContain('Open a pull request');
    expect(everythingOnPage()).toContain('preview:');
  });
});
