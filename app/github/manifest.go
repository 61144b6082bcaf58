package github

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// AppRegistration is the App GitHub created from Stagely's manifest, with its secrets.
type AppRegistration struct {
	ID            int64
	Slug          string
	HTMLURL       string
	ClientID      string
	ClientSecret  string
	WebhookSecret string
	PrivateKeyPEM []byte
}

// String keeps the secrets out of logs.
func (r AppRegistration) String() string {
	return fmt.Sprintf("AppRegistration{ID: %d, Slug: %q, secrets: [redacted]}", r.ID, r.Slug)
}

// GoString keeps %#v as safe as %v.
func (r AppRegistration) GoString() string { return r.String() }

// ConvertManifest trades the one-time code GitHub sent back from its new-app page for the new
// App's credentials (POST /app-manifests/{code}/conversions, no authentication). A code that is
// used, expired or unknown is an *APIError with status 404 or 422. The code buys the App's
// keys for an hour, so neither the error nor the log names it.
func (c *Client) ConvertManifest(ctx context.Context, code string) (AppRegistration, error) {
	ctx = withLogPath(ctx, "/app-manifests/{code}/conversions")
	cfg, _, err := c.client(c.wire).Apps.CompleteAppManifest(ctx, url.PathEscape(code))
	if err != nil {
		// A network error is a *url.Error whose URL names the code.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return AppRegistration{}, fmt.Errorf("convert the App manifest: %w", apiError(err))
	}
	return AppRegistration{
		ID: cfg.GetID(), Slug: cfg.GetSlug(), HTMLURL: cfg.GetHTMLURL(),
		ClientID: cfg.GetClientID(), ClientSecret: cfg.GetClientSecret(),
		WebhookSecret: cfg.GetWebhookSecret(), PrivateKeyPEM: []byte(cfg.GetPEM()),
	}, nil
}
