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

describe('preview secrets and .env paste', () => {
  it('shows the two sets side by side, with shared production secrets listed under previews', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    server.secretValues.set(`${project.id}/global/DB_URL`, 'prod-db');
    server.secretValues.set(`${project.id}/global/SENTRY_DSN`, 'dsn');
    server.sharedSecrets.add(`${project.id}/global/SENTRY_DSN`);
    server.previewSecretValues.set(`${project.id}/global/DB_URL`, 'preview-db');
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    const prod = await screen.findByTestId('secret-set-production');
    const prev = screen.getByTestId('secret-set-preview');
    await within(prod).findAllByTestId('secret-row');
    expect(within(prod).getAllByTestId('secret-row').map((r) => r.dataset.key)).toEqual(['DB_URL', 'SENTRY_DSN']);
    expect(within(prev).getAllByTestId('secret-row').map((r) => r.dataset.key)).toEqual(['DB_URL']);
    expect(within(prev).getAllByTestId('secret-shared-row').map((r) => r.dataset.key)).toEqual(['SENTRY_DSN']);

    // Ticking "also for previews" on DB_URL lists it under previews too, overridden by the preview value.
    const dbRow = within(prod).getAllByTestId('secret-row').find((r) => r.dataset.key === 'DB_URL')!;
    await user.click(within(dbRow).getByTestId('secret-share'));
    await waitFor(() => expect(within(prev).getAllByTestId('secret-shared-row')).toHaveLength(2));
    expect(server.requests.find((r) => r.method === 'PATCH')?.body).toEqual({ share_with_previews: true });
    const overridden = within(prev).getAllByTestId('secret-shared-row').find((r) => r.dataset.key === 'DB_URL')!;
    expect(overridden.textContent).toContain('the preview value above wins');
    expect(everythingOnPage()).not.toContain('preview-db');
  });

  it('saves a secret into the preview set from the form', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    await user.selectOptions(await screen.findByLabelText('Set'), 'preview');
    expect(screen.queryByTestId('secret-form-share')).toBeNull();
    await user.type(screen.getByLabelText('Key'), 'STRIPE_KEY');
    await user.type(screen.getByLabelText('Value'), 'sk_test_123');
    await user.click(screen.getByRole('button', { name: 'Save secret' }));
    await within(screen.getByTestId('secret-set-preview')).findByTestId('secret-row');
    expect(server.previewSecretValues.get(`${project.id}/global/STRIPE_KEY`)).toBe('sk_test_123');
    expect(server.secretValues.size).toBe(0);
    expect(screen.getByTestId('secret-saved').textContent).toContain('Saved STRIPE_KEY in global (Previews)');
  });

  it('a pasted .env with bad lines lists each line, stores nothing, and imports once fixed', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    await user.click(await screen.findByTestId('secrets-paste-preview'));
    const dialog = screen.getByRole('dialog', { name: 'Paste a .env file into Previews' });
    const text = within(dialog).getByLabelText('.env file');
    expect(document.activeElement).toBe(text);
    await user.click(text);
    await user.paste('# preview\nexport API_URL=https://api.preview.example.com\nnot a variable\n9LIVES=x\n');
    await user.click(within(dialog).getByRole('button', { name: 'Import into Previews' }));

    const errors = await within(dialog).findAllByTestId('dotenv-error');
    expect(errors.map((e) => e.textContent)).toEqual([
      'Line 3: expected KEY=VALUE: there is no =',
      'Line 4: key "9LIVES" must start with a letter or _ and hold only letters, digits and _',
    ]);
    expect(within(dialog).getByTestId('dotenv-errors').textContent).toContain('nothing was imported');
    expect(server.previewSecretValues.size).toBe(0);

    await user.clear(text);
    await user.paste('export API_URL=https://api.preview.example.com\nDB_URL="postgres://preview"\n');
    await user.click(within(dialog).getByRole('button', { name: 'Import into Previews' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(screen.getByTestId('secrets-imported').textContent).toBe('Imported 2 secrets into Previews.');
    const rows = within(screen.getByTestId('secret-set-preview')).getAllByTestId('secret-row');
    expect(rows.map((r) => r.dataset.key)).toEqual(['API_URL', 'DB_URL']);
    expect(server.previewSecretValues.get(`${project.id}/global/DB_URL`)).toBe('postgres://preview');
    expect(everythingOnPage()).not.toContain('postgres://preview');
  });

  it('pastes into production marked for previews, and Escape closes the dialog', async () => {
    const server = new FakeServer();
    const project = server.addProject();
    const user = userEvent.setup();
    renderApp(server, `/projects/${project.id}`);

    await user.click(await screen.findByTestId('secrets-paste-production'));
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();

    await user.click(screen.getByTestId('secrets-paste-production'));
    const dialog = screen.getByRole('dialog', { name: 'Paste a .env file into Production' });
    await user.paste('WORKERS=4\n');
    const scope = within(dialog).getByLabelText('Scope');
    await user.clear(scope);
    await user.type(scope, 'worker');
    await user.click(within(dialog).getByLabelText('Also for previews'));
    await user.click(within(dialog).getByRole('button', { name: 'Import into Production' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    const body = server.requests.find((r) => r.method === 'POST')!;
    expect(body.path).toBe(`/api/projects/${project.id}/secrets/import`);
    expect(body.body).toEqual({ dotenv: 'WORKERS=4\n', scope: 'worker', share_with_previews: true });
    expect(within(screen.getByTestId('secret-set-preview')).getAllByTestId('secret-shared-row').map((r) => r.dataset.key)).toEqual(['WORKERS']);
  });
});
