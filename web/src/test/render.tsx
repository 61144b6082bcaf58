import { render, type RenderResult } from '@testing-library/react';
import { ApiClient } from '../api';
import { App } from '../App';
import type { FakeServer } from './fakeServer';

/** Renders the whole dashboard at path against the fake server, as a page load would. */
export function renderApp(server: FakeServer, path: string, opts: { agentsPollMs?: number } = {}): RenderResult {
  window.history.replaceState(null, '', path);
  return render(<App api={new ApiClient(server.fetch)} agentsPollMs={opts.agentsPollMs ?? 60_000} />);
}

/** Everything the page would show or submit: markup plus the live values of form controls. */
export function everythingOnPage(): string {
  const values = [...document.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')].map((e) => e.value);
  return document.documentElement.outerHTML + '\n' + values.join('\n');
}
