// Package retention prunes stored history that has outlived its use: the log lines of old
// deployments and old decided webhook deliveries (a delivery's raw body is already dropped when
// it is decided). See docs/configuration.md for the settings and why they default as they do.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/stagely/stagely/app/periodic"
)

// Store is the part of the database the pruner deletes from (store.Store).
type Store interface {
	PruneDeploymentLogs(ctx context.Context, cutoff time.Time, keepLast, batch int) (deployments, lines int64, err error)
	PruneDeliveries(ctx context.Context, cutoff time.Time, batch int) (int64, error)
}

// Options configure a Pruner. A zero Logs or Deliveries keeps that history for ever.
type Options struct {
	Store Store
	// Logs is how long a finished deployment keeps its log lines.
	Logs time.Duration
	// KeepLast deployments per project keep their logs whatever their age.
	KeepLast int
	// Deliveries is how long a decided delivery is kept.
	Deliveries time.Duration
	// Every is how often a pass runs; an hour by default.
	Every time.Duration
	// Batch bounds one delete statement, so no pass holds a long transaction; 500 by default.
	Batch  int
	Now    func() time.Time
	Logger *slog.Logger
}

// Pruner deletes what the retention says has expired.
type Pruner struct{ opt Options }

// New fills the defaults of o.
func New(o Options) *Pruner {
	if o.Every <= 0 {
		o.Every = time.Hour
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pruner{opt: o}
}

// Report is what one pass deleted.
type Report struct {
	// Deployments lost their logs, LogLines in all.
	Deployments, LogLines int64
	Deliveries            int64
}

// Prune runs one pass: batch after batch until nothing older than the retention is left or ctx
// ends. Several servers pruning at once only share the work.
func (p *Pruner) Prune(ctx context.Context) (Report, error) {
	var rep Report
	now := p.opt.Now()
	if p.opt.Logs > 0 {
		for {
			d, l, err := p.opt.Store.PruneDeploymentLogs(ctx, now.Add(-p.opt.Logs), p.opt.KeepLast, p.opt.Batch)
			if err != nil {
				return rep, fmt.Errorf("prune deployment logs: %w", err)
			}
			rep.Deployments, rep.LogLines = rep.Deployments+d, rep.LogLines+l
			if d < int64(p.opt.Batch) {
				break
			}
		}
	}
	if p.opt.Deliveries > 0 {
		for {
			n, err := p.opt.Store.PruneDeliveries(ctx, now.Add(-p.opt.Deliveries), p.opt.Batch)
			if err != nil {
				return rep, fmt.Errorf("prune webhook deliveries: %w", err)
			}
			rep.Deliveries += n
			if n < int64(p.opt.Batch) {
				break
			}
		}
	}
	return rep, nil
}

// Run prunes at once and then every Every until ctx ends. It always returns nil: a pass that
// fails is logged and the next one tries again.
func (p *Pruner) Run(ctx context.Context) error {
	return periodic.Run(ctx, p.opt.Every, func(ctx context.Context) {
		rep, err := p.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.opt.Logger.Warn("prune stored history; retried at the next pass", "err", err, "every", p.opt.Every)
		case rep != Report{}:
			p.opt.Logger.Info("pruned stored history", "deployments", rep.Deployments, "log_lines", rep.LogLines, "deliveries", rep.Deliveries)
		}
	})
}
