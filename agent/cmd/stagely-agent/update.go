package main

import (
	"context"
	"log/slog"

	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/selfupdate"
)

// selfUpdate sets up self-update (docs/agents.md): the updater for conn, nil when it is
// off, and the hook, called when the server accepted a connection, that confirms a new
// build on trial. A trial that expires rolls
// back to the previous binary and executes it; the watcher ends with ctx.
func selfUpdate(ctx context.Context, cfg config, log *slog.Logger) (conn.Updater, *selfupdate.Updater, func()) {
	if !cfg.SelfUpdate {
		log.Info("self-update is off (STAGELY_SELF_UPDATE=off)")
		return nil, nil, nil
	}
	u, err := selfupdate.New(selfupdate.Options{
		DataDir: cfg.DataDir, ServerURL: cfg.ServerURL, Version: version, Logger: log,
		ConfirmWithin: cfg.UpdateConfirmWithin,
	})
	if err != nil {
		log.Warn("self-update is off: the agent cannot find its own binary", "err", err)
		return nil, nil, nil
	}
	trial, err := u.Resume()
	if err != nil {
		log.Error("self-update: resume the update on trial", "err", err)
	}
	if trial != nil {
		go func() {
			select {
			case <-ctx.Done():
			case <-trial.Expired():
				if err := trial.RollBack(); err != nil {
					log.Error("self-update: roll back", "err", err)
				}
			}
		}()
	}
	return u, u, trial.Confirm
}
