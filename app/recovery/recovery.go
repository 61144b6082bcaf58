// Package recovery brings back the webhooks GitHub could not deliver. GitHub does not retry a
// failed delivery on its own: a push sent while the server or PostgreSQL was down is lost
// unless someone asks for it again. The Loop reads the App's delivery log
// (GET /app/hook/deliveries), finds the events whose every attempt failed and that Stagely
// has not recorded, and asks GitHub to redeliver each (POST /app/hook/deliveries/{id}/attempts),
// at start and then periodically. The redelivery arrives as an ordinary signed webhook, with
// the event's original X-GitHub-Delivery, so the intake path and its de-duplication apply.
package recovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/periodic"
	"github.com/stagely/stagely/store"
)

// Defaults and bounds of the loop.
const (
	// DefaultInterval is how often the delivery log is read after the pass at start.
	DefaultInterval = 5 * time.Minute
	// logRetention is how long GitHub keeps a webhook's delivery log ("3 days"): the pass at
	// start reads all of it, since nothing says how long the server was down.
	logRetention = 72 * time.Hour
	// periodicLookback is how far back a periodic pass reads at least, so an event asked for
	// whose redelivery failed again is seen again and retried.
	periodicLookback = time.Hour
	// clockSlack covers the difference between GitHub's clock and ours.
	clockSlack = 5 * time.Minute
	// maxRequests bounds the redeliveries asked for one event; minRetryAfter is the least time
	// between two of them.
	maxRequests   = 3
	minRetryAfter = time.Minute
)

// GitHub is the App's delivery log as the loop uses it (*github.Client).
type GitHub interface {
	HookDeliveriesSince(ctx context.Context, since time.Time) ([]github.HookDelivery, bool, error)
	RedeliverHookDelivery(ctx context.Context, id int64) error
}

// Store is what the loop reads and keeps (*store.Store).
type Store interface {
	RecordedDeliveries(ctx context.Context, guids []string) (map[string]bool, error)
	ClaimRedelivery(ctx context.Context, r store.Redelivery, retryBefore time.Time, maxRequests int) (bool, error)
	PruneRedeliveries(ctx context.Context, before time.Time) (int64, error)
}

// Options configures a Loop.
type Options struct {
	GitHub GitHub
	Store  Store
	// Interval is the time between passes; zero means DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Loop finds missed webhook deliveries and asks GitHub for them again.
type Loop struct {
	opt Options
	log *slog.Logger
	// since is where the next pass reads back to at least: the start of the last pass that
	// completed, or the whole retained log before the first.
	since time.Time
}

// New returns a Loop; its first pass reads GitHub's whole retained delivery log.
func New(opt Options) *Loop {
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Loop{opt: opt, log: opt.Logger.With("component", "webhook recovery")}
}

// Pass is what one pass found and did.
type Pass struct {
	// Examined is how many delivery attempts the log listed; Complete is false when it was
	// longer than the client reads and its oldest attempts were not examined.
	Examined int
	Complete bool
	// Missed counts the events whose every attempt failed and that Stagely has not recorded;
	// Asked those a redelivery was asked for in this pass; the others were asked for lately
	// (or too often already).
	Missed int
	Asked  int
}

// Run makes a pass at once and then every Interval until ctx ends. A pass that fails (GitHub
// or PostgreSQL unreachable) is logged and made again at the next tick.
func (l *Loop) Run(ctx context.Context) error {
	return periodic.Run(ctx, l.opt.Interval, func(ctx context.Context) {
		p, err := l.Once(ctx)
		switch {
		case ctx.Err() != nil:
			// Ending: Run returns.
		case errors.Is(err, appcreds.ErrNoApp):
			// Nothing to recover before /setup has created the App.
		case err != nil:
			l.log.Warn("read the webhook delivery log", "err", err)
		case p.Asked > 0 || !p.Complete:
			l.log.Info("asked GitHub to redeliver missed webhooks", "missed", p.Missed, "asked", p.Asked,
				"examined", p.Examined, "complete", p.Complete)
		}
	})
}

// Once makes one pass: it lists the log back to the last complete pass (at least an hour, the
// whole log the first time), and asks for a redelivery of every missed event, newest first,
// so that of several pushes to a branch the newest arrives first and the older ones are
// recorded superseded behind it rather than deployed in turn.
func (l *Loop) Once(ctx context.Context) (Pass, error) {
	start := l.opt.Now()
	since := start.Add(-logRetention)
	if !l.since.IsZero() {
		// Back to the last complete pass, an hour at least, never past what GitHub keeps.
		back := start.Add(-periodicLookback)
		if l.since.Before(back) {
			back = l.since
		}
		if back = back.Add(-clockSlack); back.After(since) {
			since = back
		}
	}
	// The whole log, not ?status=failure: an attempt that got no answer at all (the server
	// was down) has status_code 0, which GitHub counts neither a success nor a failure.
	attempts, complete, err := l.opt.GitHub.HookDeliveriesSince(ctx, since)
	if err != nil {
		return Pass{}, err
	}
	pass := Pass{Examined: len(attempts), Complete: complete}
	missed, err := l.missed(ctx, attempts)
	if err != nil {
		return pass, err
	}
	pass.Missed = len(missed)
	retryBefore := start.Add(-max(3*l.opt.Interval, minRetryAfter))
	var refused error
	for _, ev := range missed {
		claimed, err := l.opt.Store.ClaimRedelivery(ctx, store.Redelivery{
			GUID: ev.guid, Event: ev.event, GitHubAttemptID: ev.first.ID, FirstAttemptAt: ev.first.DeliveredAt, RequestedAt: start,
		}, retryBefore, maxRequests)
		if err != nil {
			return pass, fmt.Errorf("claim redelivery of %s: %w", ev.guid, err)
		}
		if !claimed {
			continue
		}
		// The claim is kept even when GitHub refuses: the event is asked for again after
		// retryBefore, maxRequests times at most. One refusal does not hold up the others.
		if err := l.opt.GitHub.RedeliverHookDelivery(ctx, ev.last.ID); err != nil {
			refused = errors.Join(refused, err)
			continue
		}
		pass.Asked++
		l.log.Info("asked for a missed webhook", "delivery", ev.guid, "event", ev.event,
			"first_sent", ev.first.DeliveredAt, "last_status", ev.last.Status)
	}
	if _, err := l.opt.Store.PruneRedeliveries(ctx, start.Add(-logRetention-24*time.Hour)); err != nil {
		return pass, fmt.Errorf("prune redeliveries: %w", err)
	}
	if refused != nil {
		return pass, refused
	}
	if complete {
		l.since = start
	}
	return pass, nil
}

// missedEvent is an event of the delivery log that never reached Stagely.
type missedEvent struct {
	guid, event string
	// first and last are its earliest and latest attempts listed.
	first, last github.HookDelivery
}

// missed groups attempts by event and keeps the events that no attempt delivered and that
// webhook_deliveries does not hold, newest first by GitHub's first attempt.
func (l *Loop) missed(ctx context.Context, attempts []github.HookDelivery) ([]missedEvent, error) {
	byGUID := map[string]*missedEvent{}
	delivered := map[string]bool{}
	for _, a := range attempts {
		if a.GUID == "" {
			continue
		}
		if a.Delivered() {
			delivered[a.GUID] = true
			continue
		}
		ev, ok := byGUID[a.GUID]
		if !ok {
			byGUID[a.GUID] = &missedEvent{guid: a.GUID, event: a.Event, first: a, last: a}
			continue
		}
		if a.ID < ev.first.ID {
			ev.first = a
		}
		if a.ID > ev.last.ID {
			ev.last = a
		}
	}
	var guids []string
	for g := range byGUID {
		if !delivered[g] {
			guids = append(guids, g)
		}
	}
	if len(guids) == 0 {
		return nil, nil
	}
	recorded, err := l.opt.Store.RecordedDeliveries(ctx, guids)
	if err != nil {
		return nil, fmt.Errorf("look up missed deliveries: %w", err)
	}
	var out []missedEvent
	for _, g := range guids {
		if !recorded[g] {
			out = append(out, *byGUID[g])
		}
	}
	slices.SortFunc(out, func(a, b missedEvent) int {
		return cmp.Or(b.first.DeliveredAt.Compare(a.first.DeliveredAt), cmp.Compare(b.first.ID, a.first.ID))
	})
	return out, nil
}
