package github

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// Token is a short-lived installation access token.
type Token struct {
	// Value is the secret itself; it goes into the DEPLOY payload and nowhere else.
	Value string
	// ExpiresAt is when GitHub stops accepting it (one hour after minting).
	ExpiresAt time.Time
}

// String never shows the value, so a token printed by mistake leaks nothing.
func (t Token) String() string {
	return fmt.Sprintf("[redacted token, expires %s]", t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString keeps %#v as safe as %v.
func (t Token) GoString() string { return t.String() }

// LogValue keeps slog as safe as fmt.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// RepoReadToken mints a token for the agent that reaches only the one repository and may only read
// its contents (GitHub adds metadata:read to every token), so a leaked agent token exposes one
// repository's source for at most an hour and can write nothing.
func (in *Installation) RepoReadToken(ctx context.Context, repoID int64) (Token, error) {
	opts := &gh.InstallationTokenOptions{
		RepositoryIDs: []int64{repoID},
		Permissions:   &gh.InstallationPermissions{Contents: gh.String("read")},
	}
	app, _, err := in.clients(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("mint read token for repository %d: %w", repoID, err)
	}
	tok, _, err := app.appClient.Apps.CreateInstallationToken(ctx, in.id, opts)
	if err != nil {
		return Token{}, fmt.Errorf("mint read token for repository %d: %w", repoID, apiError(err))
	}
	// Refuse a token broader than asked for rather than hand it to a server we do not control.
	if p := tok.GetPermissions(); p != nil {
		if c := p.GetContents(); c != "read" {
			return Token{}, fmt.Errorf("mint read token for repository %d: GitHub granted contents %q, want read", repoID, c)
		}
		if p.GetChecks() != "" || p.GetStatuses() != "" || p.GetDeployments() != "" || p.GetPullRequests() != "" {
			return Token{}, fmt.Errorf("mint read token for repository %d: GitHub granted more than contents:read", repoID)
		}
	}
	return Token{Value: tok.GetToken(), ExpiresAt: tok.GetExpiresAt().Time}, nil
}
