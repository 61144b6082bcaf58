// A tiny history-API router: the server answers every dashboard path with index.html
// (web/embed.go), and this file decides which page that path shows.
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react';

/** The pages the dashboard knows; anything else is notFound. */
export type Route =
  | { page: 'projects' }
  | { page: 'newProject' }
  | { page: 'project'; id: number }
  | { page: 'agents' }
  | { page: 'notFound'; path: string };

/** Maps a location pathname to a page. Unknown paths fall back to notFound, never to an error. */
export function matchRoute(pathname: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  if (path === '/' || path === '' || path === '/projects') return { page: 'projects' };
  if (path === '/projects/new') return { page: 'newProject' };
  if (path === '/agents') return { page: 'agents' };
  const m = /^\/projects\/([1-9][0-9]{0,15})$/.exec(path);
  if (m?.[1]) return { page: 'project', id: Number(m[1]) };
  return { page: 'notFound', path: pathname };
}

const navigateEvent = 'stagely:navigate';

function subscribe(onChange: () => void): () => void {
  window.addEventListener('popstate', onChange);
  window.addEventListener(navigateEvent, onChange);
  return () => {
    window.removeEventListener('popstate', onChange);
    window.removeEventListener(navigateEvent, onChange);
  };
}

/** The current pathname, re-rendering on navigate() and on the browser's back/forward. */
export function usePathname(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

/** Moves to another dashboard page without reloading. */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(navigateEvent));
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { to: string };

/** An ordinary link (open in new tab still works) that navigates in place on a plain click. */
export function Link({ to, onClick, ...rest }: LinkProps) {
  const handle = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={handle} {...rest} />;
}
