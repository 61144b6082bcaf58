// The shell: who is signed in, the top navigation, and which page the URL asks for.
import { useEffect, useRef, useState } from 'react';
import { ApiError, asApiError, type ApiClient, type Me } from './api';
import { ApiContext } from './context';
import { Link, matchRoute, navigate, usePathname, type Route } from './router';
import { ErrorMessage } from './components/ErrorMessage';
import { Loading } from './components/Loading';
import { SignIn } from './pages/SignIn';
import { ProjectsPage } from './pages/Projects';
import { NewProjectPage } from './pages/NewProject';
import { ProjectPage } from './pages/Project';
import { AgentsPage } from './pages/Agents';

type Session = { status: 'loading' } | { status: 'signedOut' } | { status: 'error'; error: ApiError } | { status: 'signedIn'; me: Me };

export function App({ api, agentsPollMs = 5000 }: { api: ApiClient; agentsPollMs?: number }) {
  const [session, setSession] = useState<Session>({ status: 'loading' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => api.onSignedOut(() => setSession({ status: 'signedOut' })), [api]);

  useEffect(() => {
    let current = true;
    api.me().then(
      (me) => current && setSession({ status: 'signedIn', me }),
      (e: unknown) => {
        if (!current) return;
        if (e instanceof ApiError && e.status === 401) setSession({ status: 'signedOut' });
        else setSession({ status: 'error', error: asApiError(e) });
      },
    );
    return () => {
      current = false;
    };
  }, [api, attempt]);

  let body;
  switch (session.status) {
    case 'loading':
      body = <Loading what="your session" />;
      break;
    case 'signedOut':
      body = <SignIn />;
      break;
    case 'error':
      body = <ErrorMessage error={session.error} onRetry={() => setAttempt((a) => a + 1)} />;
      break;
    case 'signedIn':
      return (
        <ApiContext.Provider value={api}>
          <SignedIn me={session.me} api={api} agentsPollMs={agentsPollMs} onSignedOut={() => setSession({ status: 'signedOut' })} />
        </ApiContext.Provider>
      );
  }
  return <main className="page narrow">{body}</main>;
}

function SignedIn({
  me,
  api,
  agentsPollMs,
  onSignedOut,
}: {
  me: Me;
  api: ApiClient;
  agentsPollMs: number;
  onSignedOut: () => void;
}) {
  const pathname = usePathname();
  const route = matchRoute(pathname);
  const [signOutError, setSignOutError] = useState<ApiError | null>(null);
  const mainRef = useRef<HTMLElement>(null);
  const firstPath = useRef(pathname);

  // After an in-app navigation, move focus to the new page so screen readers and keyboard users
  // start at its top, as they would after a full page load.
  useEffect(() => {
    if (pathname !== firstPath.current) {
      firstPath.current = '';
      mainRef.current?.focus();
    }
  }, [pathname]);

  const signOut = () => {
    setSignOutError(null);
    api.signOut().then(onSignedOut, (e: unknown) => {
      if (e instanceof ApiError && e.status !== 401) setSignOutError(e);
    });
  };

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <nav aria-label="Main">
          <Link to="/projects" className="brand">
            Stagely
          </Link>
          <Link to="/projects" aria-current={route.page.startsWith('project') || route.page === 'newProject' ? 'page' : undefined}>
            Projects
          </Link>
          <Link to="/agents" aria-current={route.page === 'agents' ? 'page' : undefined}>
            Agents
          </Link>
        </nav>
        <div className="user">
          {me.avatar_url && <img src={me.avatar_url} alt="" width={24} height={24} />}
          <span data-testid="nav-user">{me.login}</span>
          <button type="button" onClick={signOut} data-testid="sign-out">
            Sign out
          </button>
        </div>
      </header>
      {signOutError && <ErrorMessage error={signOutError} />}
      <main id="main" className="page" ref={mainRef} tabIndex={-1}>
        <Page route={route} agentsPollMs={agentsPollMs} />
      </main>
    </>
  );
}

function Page({ route, agentsPollMs }: { route: Route; agentsPollMs: number }) {
  switch (route.page) {
    case 'projects':
      return <ProjectsPage />;
    case 'newProject':
      return <NewProjectPage onCreated={(p) => navigate(`/projects/${p.id}`)} />;
    case 'project':
      return <ProjectPage key={route.id} id={route.id} />;
    case 'agents':
      return <AgentsPage pollMs={agentsPollMs} />;
    case 'notFound':
      return <NotFound path={route.path} />;
  }
}

/** The router's fallback: a page for paths the dashboard does not know. */
export function NotFound({ path }: { path: string }) {
  return (
    <section data-testid="not-found">
      <h1>Page not found</h1>
      <p>
        There is no dashboard page at <code>{path}</code>. <Link to="/projects">Go to your projects</Link>.
      </p>
    </section>
  );
}
