package github

import (
	"context"
	"errors"
	"fmt"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// HookDelivery is one attempt to deliver one of the App's webhooks, as GitHub's delivery log
// (GET /app/hook/deliveries) lists it.
type HookDelivery struct {
	// ID names this attempt; it is what RedeliverHookDelivery takes.
	ID int64
	// GUID is the X-GitHub-Delivery header, shared by every attempt at the same event.
	GUID string
	// DeliveredAt is when GitHub made the attempt (whole seconds).
	DeliveredAt time.Time
	// Redelivery is true for an attempt made by a redelivery.
	Redelivery bool
	// Status is GitHub's word for the outcome: "OK", "Invalid HTTP Response: 503", "timed out"…
	Status string
	// StatusCode is the receiver's answer, 0 when there was none.
	StatusCode int
	Event      string
	Action     string
	// InstallationID and RepositoryID are 0 for events about none.
	InstallationID int64
	RepositoryID   int64
}

// Delivered says whether the receiver took this attempt: it answered 2xx.
func (d HookDelivery) Delivered() bool { return d.StatusCode >= 200 && d.StatusCode < 300 }

// HookDeliveriesSince lists the attempts GitHub made to deliver the App's webhooks since since,
// newest first. It follows the cursor pagination, 100 a page, and stops at the first page that
// reaches back past since, or after maxListPages pages: complete is false then, and the list
// holds the newest attempts only.
func (a *App) HookDeliveriesSince(ctx context.Context, since time.Time) (out []HookDelivery, complete bool, err error) {
	opts := &gh.ListCursorOptions{PerPage: 100}
	for range maxListPages {
		page, resp, err := a.appClient.Apps.ListHookDeliveries(ctx, opts)
		if err != nil {
			return nil, false, fmt.Errorf("list the App's webhook deliveries: %w", apiError(err))
		}
		for _, d := range page {
			hd := hookDelivery(d)
			if hd.DeliveredAt.Before(since) {
				return out, true, nil
			}
			out = append(out, hd)
		}
		if resp.Cursor == "" || len(page) == 0 {
			return out, true, nil
		}
		opts.Cursor = resp.Cursor
	}
	return out, false, nil
}

// RedeliverHookDelivery asks GitHub to deliver again the event of attempt id: GitHub answers
// 202 Accepted and makes a new attempt, with the same GUID, soon after.
func (a *App) RedeliverHookDelivery(ctx context.Context, id int64) error {
	_, _, err := a.appClient.Apps.RedeliverHookDelivery(ctx, id)
	var accepted *gh.AcceptedError
	if err != nil && !errors.As(err, &accepted) {
		return fmt.Errorf("redeliver webhook delivery %d: %w", id, apiError(err))
	}
	return nil
}

// HookDeliveriesSince is App.HookDeliveriesSince as the App that Options.AppKey names now.
func (c *Client) HookDeliveriesSince(ctx context.Context, since time.Time) ([]HookDelivery, bool, error) {
	a, err := c.currentApp(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("list the App's webhook deliveries: %w", err)
	}
	return a.HookDeliveriesSince(ctx, since)
}

// RedeliverHookDelivery is App.RedeliverHookDelivery as the App that Options.AppKey names now.
func (c *Client) RedeliverHookDelivery(ctx context.Context, id int64) error {
	a, err := c.currentApp(ctx)
	if err != nil {
		return fmt.Errorf("redeliver webhook delivery %d: %w", id, err)
	}
	return a.RedeliverHookDelivery(ctx, id)
}

func hookDelivery(d *gh.HookDelivery) HookDelivery {
	return HookDelivery{
		ID: d.GetID(), GUID: d.GetGUID(), DeliveredAt: d.GetDeliveredAt().Time, Redelivery: d.GetRedelivery(),
		Status: d.GetStatus(), StatusCode: d.GetStatusCode(), Event: d.GetEvent(), Action: d.GetAction(),
		InstallationID: d.GetInstallationID(), RepositoryID: d.GetRepositoryID(),
	}
}
