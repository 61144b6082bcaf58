import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { FakeServer } from '../test/fakeServer';
import { everythingOnPage, renderApp } from '../test/render';

describe('agents', () => {
  it('shows a new agent token and cloud-init once; after a reload the page does not have it', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    const first = renderApp(server, '/agents');

    await screen.findByTestId('agents-empty');
    await user.type(screen.getByLabelText('Name'), 'web-1{Enter}');

    const tokenBox = await screen.findByTestId('agent-token');
    const token = tokenBox.textContent ?? '';
    expect(token).toMatch(/^stgb_agent_\d+_1_Zq8x$/);
    expect(screen.getByTestId('agent-cloud-init').tagName).toBe('PRE');
    expect(screen.getByTestId('agent-cloud-init').textContent).toContain(`"token":"${token}"`);
    expect(screen.getByTestId('agent-token-note').textContent).toContain('This is the only time you will see this token.');
    expect(screen.getByTestId('agent-token-note').textContent).toContain('It works once, until tomorrow');
    expect(screen.getByRole('button', { name: 'Copy token' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Copy cloud-init' })).toBeTruthy();
    expect(screen.getByTestId('agent-install-command').textContent).toBe(
      `export STAGELY_TOKEN=${token}; curl -fsSL https://stagely.example/install.sh | sudo --preserve-env=STAGELY_TOKEN sh`,
    );
    expect(screen.getByRole('button', { name: 'Copy install command' })).toBeTruthy();
    const row = await screen.findByTestId('agent-row');
    expect(within(row).getByTestId('agent-status').textContent).toBe('waiting for first connection');
    expect(within(row).getByTestId('agent-bootstrap-expiry').textContent).toBe('Token valid until tomorrow');
    expect(JSON.stringify({ ...window.localStorage }) + JSON.stringify({ ...window.sessionStorage })).not.toContain(token);
    first.unmount();

    renderApp(server, '/agents');
    const reloadedRow = await screen.findByTestId('agent-row');
    expect(reloadedRow.textContent).toContain('web-1');
    expect(screen.queryByTestId('agent-token')).toBeNull();
    expect(everythingOnPage()).not.toContain(token);
  });

  it('"I have saved it" removes the token from the page', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    renderApp(server, '/agents');

    await user.type(await screen.findByLabelText('Name'), 'db-1{Enter}');
    const token = (await screen.findByTestId('agent-token')).textContent ?? '';
    await user.click(screen.getByTestId('agent-token-done'));

    expect(screen.queryByTestId('agent-token')).toBeNull();
    expect(everythingOnPage()).not.toContain(token);
    expect(screen.getByLabelText('Name')).toBeTruthy();
  });

  it('an empty name is refused before sending, with the message next to the field', async () => {
    const server = new FakeServer();
    const user = userEvent.setup();
    renderApp(server, '/agents');

    await user.click(await screen.findByTestId('new-agent-submit'));
    expect(screen.getByTestId('agent-name-error').textContent).toContain('Give the agent a name');
    expect(server.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('rotating asks first, then shows the new token once', async () => {
    const server = new FakeServer();
    server.addAgent({ name: 'web-1', status: 'online', last_heartbeat: new Date().toISOString(), version: '1.2.0' });
    const user = userEvent.setup();
    renderApp(server, '/agents');

    const row = await screen.findByTestId('agent-row');
    await user.click(within(row).getByTestId('agent-rotate'));
    expect(server.requests.some((r) => r.path.endsWith('/rotate-token'))).toBe(false);
    await user.click(within(row).getByTestId('agent-rotate-confirm'));

    expect((await screen.findByTestId('agent-token')).textContent).toMatch(/_1_Zq8x$/);
    expect(screen.getByRole('heading', { name: 'New token for web-1' })).toBeTruthy();
  });

  it('refreshes status while the page is open', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({ name: 'web-1', status: 'offline' });
    renderApp(server, '/agents', { agentsPollMs: 20 });

    const row = await screen.findByTestId('agent-row');
    expect(within(row).getByTestId('agent-status').textContent).toBe('offline');
    agent.status = 'busy';
    agent.last_heartbeat = new Date().toISOString();
    await waitFor(() => expect(within(screen.getByTestId('agent-row')).getByTestId('agent-status').textContent).toBe('busy'));
  });

  it('deletes an agent after confirming', async () => {
    const server = new FakeServer();
    server.addAgent({ name: 'old' });
    const user = userEvent.setup();
    renderApp(server, '/agents');

    const row = await screen.findByTestId('agent-row');
    await user.click(within(row).getByTestId('agent-delete'));
    await user.click(within(row).getByTestId('agent-delete-confirm'));
    await screen.findByTestId('agents-empty');
    expect(server.agents).toHaveLength(0);
  });

  it('shows an agent as waiting for its first connection until it has, and says when its token expired', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({
      name: 'web-1',
      waiting_for_first_connection: true,
      bootstrap_expires_at: new Date(Date.now() - 60_000).toISOString(),
    });
    renderApp(server, '/agents', { agentsPollMs: 20 });

    const row = await screen.findByTestId('agent-row');
    expect(within(row).getByTestId('agent-status').textContent).toBe('waiting for first connection');
    expect(within(row).getByTestId('agent-bootstrap-expiry').textContent).toContain('expired: rotate it');
    agent.waiting_for_first_connection = false;
    agent.bootstrap_expires_at = null;
    agent.status = 'online';
    await waitFor(() => expect(within(screen.getByTestId('agent-row')).getByTestId('agent-status').textContent).toBe('online'));
    expect(screen.queryByTestId('agent-bootstrap-expiry')).toBeNull();
  });

  it('lists the agent events, refused connections among them', async () => {
    const server = new FakeServer();
    const agent = server.addAgent({ name: 'web-1', status: 'online' });
    server.agentEvents[agent.id] = [
      {
        id: 3,
        action: 'agent.duplicate_refused',
        actor: 'agent web-1',
        detail: { source: '203.0.113.9', hostname: 'intruder', connected_hostname: 'box-1' },
        created_at: new Date().toISOString(),
      },
      { id: 2, action: 'agent.bootstrap_replayed', actor: 'agent web-1', detail: { source: '198.51.100.7' }, created_at: new Date().toISOString() },
      { id: 1, action: 'agent.create', actor: 'alice', detail: {}, created_at: new Date().toISOString() },
    ];
    const user = userEvent.setup();
    renderApp(server, '/agents');

    const row = await screen.findByTestId('agent-row');
    expect(screen.queryByTestId('agent-events')).toBeNull();
    await user.click(within(row).getByTestId('agent-events-toggle'));
    const events = await screen.findAllByTestId('agent-event');
    // The events row spans the whole table, whatever columns it has.
    const cell = screen.getByTestId('agent-events-row').querySelector('td')!;
    expect(cell.colSpan).toBe(screen.getAllByRole('columnheader').length);
    expect(events.map((e) => e.dataset.action)).toEqual(['agent.duplicate_refused', 'agent.bootstrap_replayed', 'agent.create']);
    expect(events[0]!.textContent).toContain('Refused a second agent with this token (intruder, from 203.0.113.9) while box-1 was connected');
    expect(events[0]!.className).toBe('warning');
    expect(events[1]!.textContent).toContain('used a second time, from 198.51.100.7');
    expect(events[2]!.textContent).toContain('Created by alice');
    expect(server.requests.some((r) => r.method === 'GET' && r.path === `/api/agents/${agent.id}/events`)).toBe(true);
  });

  it('shows whether each agent runs the served build and switches automatic update', async () => {
    const server = new FakeServer();
    const old = server.addAgent({ name: 'old-box', version: 'v1.2.0', version_status: 'outdated', latest_version: 'v1.3.0' });
    server.addAgent({ name: 'new-box', version: 'v1.3.0', version_status: 'current', latest_version: 'v1.3.0' });
    const user = userEvent.setup();
    renderApp(server, '/agents');

    const [oldRow, newRow] = await screen.findAllByTestId('agent-row');
    if (!oldRow || !newRow) throw new Error('want two agent rows');
    expect(within(oldRow).getByTestId('agent-version-status').textContent).toBe('update available: v1.3.0');
    expect(within(newRow).getByTestId('agent-version-status').textContent).toBe('current');

    const toggle = within(oldRow).getByTestId<HTMLInputElement>('agent-auto-update');
    expect(toggle.checked).toBe(true);
    await user.click(toggle);
    await waitFor(() => expect(old.auto_update).toBe(false));
    expect(server.requests.some((r) => r.method === 'PATCH' && r.path === `/api/agents/${old.id}`)).toBe(true);
    await waitFor(() =>
      expect(screen.getAllByTestId('agent-version-status').map((e) => e.textContent)).toContain(
        'update available: v1.3.0 (automatic update is off)',
      ),
    );
  });
});
