import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { FakeServer } from '../test/fakeServer';
import { everythingOnPage, renderApp } from '../test/render';

const secretValue = 'postgres://app:hunter2-Very-Secret@db:5432/app';

describe('project secrets', () => {
  it('never shows a secret value after it is saved, and lists only key, scope and time', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    const form = await screen.findByTestId('secret-form');
    const scope = within(form).getByLabelText('Scope');
    await user.clear(scope);
    await user.type(scope, 'web');
    await user.type(within(form).getByLabelText('Key'), 'DATABASE_URL');
    await user.type(within(form).getByLabelText('Value'), secretValue);
    expect(screen.getByTestId('secret-value')).toHaveProperty('value', secretValue);
    await user.click(screen.getByRole('button', { name: 'Save secret' }));

    const row = await screen.findByTestId('secret-row');
    expect(row.dataset).toMatchObject({ scope: 'web', key: 'DATABASE_URL' });
    expect(screen.getByTestId('secret-saved').textContent).toContain('Saved DATABASE_URL in web');
    expect(server.secretValues.get(`${project.id}/web/DATABASE_URL`)).toBe(secretValue);
    expect(screen.getByTestId('secret-value')).toHaveProperty('value', '');
    expect(everythingOnPage()).not.toContain('hunter2');
    expect(JSON.stringify({ ...window.localStorage }) + JSON.stringify({ ...window.sessionStorage })).not.toContain('hunter2');
    expect(window.location.href).not.toContain('hunter2');
  });

  it('Ctrl+Enter in the value saves, and the page after a reload has no value either', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    const first = renderApp(server, `/projects/${project.id}`);

    await user.type(await screen.findByLabelText('Key'), 'API_TOKEN');
    await user.type(screen.getByLabelText('Value'), 'tok-ABCDEF-123');
    await user.keyboard('{Control>}{Enter}{/Control}');
    await screen.findByTestId('secret-row');
    first.unmount();

    renderApp(server, `/projects/${project.id}`);
    const row = await screen.findByTestId('secret-row');
    expect(row.dataset).toMatchObject({ scope: 'global', key: 'API_TOKEN' });
    expect(everythingOnPage()).not.toContain('tok-ABCDEF-123');
  });

  it('shows the server validation next to the field and keeps the unsaved value for a retry', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    // The client lets scopes through; make the server refuse one to see its message placed.
    const real = server.fetch;
    server.fetch = async (input, init) =>
      init.method === 'PUT'
        ? new Response(JSON.stringify({ message: 'Check the highlighted fields.', validations: [{ field: 'scope', message: 'No service named "wbe" in the compose file.' }] }), { status: 422 })
        : real(input, init);
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    const scope = await screen.findByLabelText('Scope');
    await user.clear(scope);
    await user.type(scope, 'wbe');
    await user.type(screen.getByLabelText('Key'), 'A');
    await user.type(screen.getByLabelText('Value'), 'unsaved');
    await user.click(screen.getByRole('button', { name: 'Save secret' }));

    expect((await screen.findByTestId('secret-scope-error')).textContent).toBe('No service named "wbe" in the compose file.');
    expect(scope.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByRole('alert').textContent).toContain('Check the highlighted fields.');
    expect(screen.getByTestId('secret-value')).toHaveProperty('value', 'unsaved');
  });

  it('rejects a bad key before sending anything', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    await user.type(await screen.findByLabelText('Key'), '1BAD-KEY{Enter}');
    expect(screen.getByTestId('secret-key-error').textContent).toContain('not starting with a digit');
    expect(document.activeElement).toBe(screen.getByLabelText('Key'));
    expect(server.requests.filter((r) => r.method === 'PUT')).toHaveLength(0);
  });

  it('groups secrets by scope with global first, and deletes after confirming', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    server.secretValues.set(`${project.id}/worker/QUEUE`, 'q');
    server.secretValues.set(`${project.id}/global/B`, 'b');
    server.secretValues.set(`${project.id}/api/A`, 'a');
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    await screen.findAllByTestId('secret-row');
    expect(screen.getAllByTestId('secret-scope-group').map((g) => g.dataset.scope)).toEqual(['global', 'api', 'worker']);

    const row = screen.getAllByTestId('secret-row').find((r) => r.dataset.key === 'QUEUE')!;
    await user.click(within(row).getByTestId('secret-delete'));
    await user.click(within(row).getByTestId('secret-delete-confirm'));
    await waitFor(() => expect(screen.getAllByTestId('secret-row')).toHaveLength(2));
    expect(server.secretValues.has(`${project.id}/worker/QUEUE`)).toBe(false);
  });
});
