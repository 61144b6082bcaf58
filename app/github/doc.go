// Package github is Stagely's GitHub App client and reporter: it authenticates as the App (JWT) and
// as its installations (installation tokens through ghinstallation), reads stagely.yaml and compose
// files at a commit, mints the agent's read-only repository token, and reports deploy outcomes as
// check runs, commit statuses and GitHub Deployments. Every call goes through one retrying,
// logging http.RoundTripper. go-github is an implementation detail: the exported API speaks only
// this package's own types. See docs/github-client.md.
package github
