// Package webhook checks and decodes GitHub webhook deliveries.
//
// It takes a raw *http.Request (or raw bytes and a signature header), verifies
// X-Hub-Signature-256 over the exact bytes GitHub sent, reads the delivery's
// Route (event, action, installation, repository) for recording and ordering,
// and turns the payload into this package's own event types. go-github's payload
// types are used to parse and never leave the package, so callers depend only on
// Push, PullRequest, CheckRun, CheckSuite, Installation, InstallationRepositories,
// Ping and Unhandled.
//
// Errors carry a Kind so the HTTP layer can choose a status without parsing
// messages; the mapping lives in the HTTP layer (see docs/webhooks.md).
package webhook
