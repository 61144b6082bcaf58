// Shown whenever the server says there is no session (GET /api/me answered 401).
export function SignIn() {
  return (
    <section className="signin" data-testid="sign-in">
      <h1>Stagely</h1>
      <p>Push to GitHub, and your Docker Compose server deploys it.</p>
      {/* A full-page navigation, not fetch: the server answers with a redirect to GitHub. */}
      <a className="button primary" href="/auth/github/login" data-testid="sign-in-link">
        Sign in with GitHub
      </a>
    </section>
  );
}
