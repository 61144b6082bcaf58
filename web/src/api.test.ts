import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, asApiError, errorFromResponse, type FetchFn } from './api';

function respond(status: number, body?: string, contentType = 'application/json'): Response {
  return new Response(body ?? null, { status, headers: body ? { 'Content-Type': contentType } : {} });
}

describe('errorFromResponse', () => {
  it.each([
    {
      name: 'server error shape keeps message, detail and validations',
      res: () =>
        respond(
          422,
          JSON.stringify({
            message: 'Check the highlighted fields.',
            detail: 'two problems',
            validations: [
              { field: 'name', message: 'Invalid project name.' },
              { field: 'repo_id', message: 'No such repository.' },
            ],
          }),
        ),
      want: {
        status: 422,
        message: 'Check the highlighted fields.',
        detail: 'two problems',
        validations: [
          { field: 'name', message: 'Invalid project name.' },
          { field: 'repo_id', message: 'No such repository.' },
        ],
      },
    },
    {
      name: 'malformed validations are dropped, good ones kept',
      res: () => respond(422, JSON.stringify({ message: 'Bad.', validations: [{ field: 'key' }, 'x', { field: 'key', message: 'Invalid key.' }] })),
      want: { status: 422, message: 'Bad.', detail: '', validations: [{ field: 'key', message: 'Invalid key.' }] },
    },
    {
      name: 'a proxy HTML page on 502 becomes a readable message',
      res: () => respond(502, '<html>Bad Gateway</html>', 'text/html'),
      want: { status: 502, message: 'The server could not answer (502). Try again shortly.', detail: '', validations: [] },
    },
    {
      name: 'an empty 403 still says it was refused',
      res: () => respond(403),
      want: { status: 403, message: 'The request was refused (403).', detail: '', validations: [] },
    },
    {
      name: 'a JSON body without a message uses the fallback',
      res: () => respond(404, JSON.stringify({ message: '' })),
      want: { status: 404, message: 'The request was refused (404).', detail: '', validations: [] },
    },
  ])('$name', async ({ res, want }) => {
    const err = await errorFromResponse(res());
    expect(err).toBeInstanceOf(ApiError);
    expect({ status: err.status, message: err.message, detail: err.detail, validations: err.validations }).toEqual(want);
  });

  it('fieldMessage finds the message for a field', async () => {
    const err = await errorFromResponse(respond(422, JSON.stringify({ message: 'x', validations: [{ field: 'name', message: 'Too long.' }] })));
    expect(err.fieldMessage('name')).toBe('Too long.');
    expect(err.fieldMessage('branch')).toBeUndefined();
  });
});

describe('ApiClient', () => {
  it('sends same-origin credentials and JSON headers, and a JSON body only when there is one', async () => {
    const fetchFn = vi.fn<FetchFn>(async () => respond(200, JSON.stringify({ scope: 'web', key: 'A', created_at: '', updated_at: '' })));
    const api = new ApiClient(fetchFn);
    await api.putSecret(3, 'web app', 'A', 'v');
    await api.agents().catch(() => undefined);

    const [path, init] = fetchFn.mock.calls[0]!;
    expect(path).toBe('/api/projects/3/secrets/web%20app/A');
    expect(init.method).toBe('PUT');
    expect(init.credentials).toBe('same-origin');
    expect(init.headers).toEqual({ Accept: 'application/json', 'Content-Type': 'application/json' });
    expect(init.body).toBe('{"value":"v"}');

    const [, getInit] = fetchFn.mock.calls[1]!;
    expect(getInit.credentials).toBe('same-origin');
    expect(getInit.headers).toEqual({ Accept: 'application/json' });
    expect(getInit.body).toBeUndefined();
  });

  it('a 401 tells the listeners the user is signed out and rejects with the server message', async () => {
    const api = new ApiClient(async () => respond(401, JSON.stringify({ message: 'Sign in to continue.' })));
    const signedOut = vi.fn();
    const unsubscribe = api.onSignedOut(signedOut);

    await expect(api.projects()).rejects.toMatchObject({ status: 401, message: 'Sign in to continue.' });
    expect(signedOut).toHaveBeenCalledTimes(1);

    unsubscribe();
    await expect(api.me()).rejects.toMatchObject({ status: 401 });
    expect(signedOut).toHaveBeenCalledTimes(1);
  });

  it('other errors do not sign the user out', async () => {
    const api = new ApiClient(async () => respond(404, JSON.stringify({ message: 'Not found.' })));
    const signedOut = vi.fn();
    api.onSignedOut(signedOut);
    await expect(api.project(9)).rejects.toMatchObject({ status: 404, message: 'Not found.' });
    expect(signedOut).not.toHaveBeenCalled();
  });

  it('a network failure becomes status 0 with advice', async () => {
    const api = new ApiClient(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(api.agents()).rejects.toMatchObject({
      status: 0,
      message: 'Cannot reach the Stagely server. Check your connection and try again.',
    });
  });

  it('tries a GET or PUT the network dropped again, but never a POST', async () => {
    let calls = 0;
    const flaky = new ApiClient(async () => {
      calls++;
      if (calls < 3) throw new TypeError('Failed to fetch');
      return respond(200, JSON.stringify([]));
    });
    await expect(flaky.agents()).resolves.toEqual([]);
    expect(calls).toBe(3);

    calls = 0;
    const posts = new ApiClient(async () => {
      calls++;
      throw new TypeError('Failed to fetch');
    });
    await expect(posts.createAgent('box')).rejects.toMatchObject({ status: 0 });
    expect(calls).toBe(1);
  });

  it('204 answers resolve without reading a body', async () => {
    const api = new ApiClient(async () => new Response(null, { status: 204 }));
    await expect(api.deleteAgent(4)).resolves.toBeUndefined();
    await expect(api.signOut()).resolves.toBeUndefined();
  });
});

describe('asApiError', () => {
  it('keeps an ApiError as it is', () => {
    const err = new ApiError(422, 'Check the highlighted fields.', 'two problems');
    expect(asApiError(err)).toBe(err);
  });

  it.each([
    { name: 'an Error becomes status 0 with its message', thrown: new TypeError('x is undefined'), message: 'x is undefined' },
    { name: 'anything else becomes status 0 with its text', thrown: 'boom', message: 'boom' },
  ])('$name', ({ thrown, message }) => {
    const err = asApiError(thrown);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 0, message, detail: '', validations: [] });
  });
});
