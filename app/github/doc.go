// Package github is the server's one edge to GitHub. A Client acts as the App's installations
// (JWT and installation tokens through ghinstallation) once there is an App, as a signed-in user
// with that user's token (their installations, repositories and profile), and without
// credentials for the OAuth code exchange and the App-manifest conversion. As an installation it
// reads stagely.yaml and compose files at a commit, mints the agent's read-only repository
// token, and reports deploy outcomes as check runs, commit statuses and GitHub Deployments.
// Every call goes through one retrying, logging http.RoundTripper. go-github is an
// implementation detail: the exported API speaks only this package's own types. See
// docs/github-client.md.
package github
