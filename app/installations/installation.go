// Package installations keeps Stagely's github_installations table true to GitHub: the
// installation and installation_repositories webhooks say where the App is installed,
// suspended or removed, and a suspended or deleted installation deploys nothing.
//
// It is a package of its own, not part of deploy, because installations are about the App's
// access to accounts and repositories, not about deployments: deploy only reads the table.
package installations

import (
	"context"
	"fmt"
	"time"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// Store is the part of the database the installation handlers use.
type Store interface {
	UpsertInstallation(ctx context.Context, in store.Installation) (store.Installation, error)
	MarkInstallationDeleted(ctx context.Context, githubID int64, at time.Time) error
	ProjectsByRepo(ctx context.Context, repoID int64) ([]store.Project, error)
}

// Handler keeps the installations table true to installation webhooks.
type Handler struct {
	st  Store
	now func() time.Time
}

// NewHandler returns the handler of installation webhooks; now is the clock (nil: time.Now).
func NewHandler(st Store, now func() time.Time) Handler {
	if now == nil {
		now = time.Now
	}
	return Handler{st: st, now: now}
}

// Handle records an installation created, changed, suspended, unsuspended or deleted.
func (h Handler) Handle(ctx context.Context, _ int64, ev webhook.Installation) (string, error) {
	rec := store.Installation{GitHubID: ev.ID, AccountLogin: ev.AccountLogin, AccountID: ev.AccountID, AccountType: accountType(ev.AccountType)}
	switch ev.Action {
	case "created", "new_permissions_accepted", "unsuspend":
		if _, err := h.st.UpsertInstallation(ctx, rec); err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s %s", ev.ID, ev.AccountLogin, pastTense(ev.Action)), nil
	case "suspend":
		at := ev.SuspendedAt
		if at.IsZero() {
			at = h.now()
		}
		rec.SuspendedAt.Time, rec.SuspendedAt.Valid = at, true
		if _, err := h.st.UpsertInstallation(ctx, rec); err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s suspended: its projects deploy nothing until it is unsuspended", ev.ID, ev.AccountLogin), nil
	case "deleted":
		err := h.st.MarkInstallationDeleted(ctx, ev.ID, h.now())
		if store.IsNotFound(err) {
			return fmt.Sprintf("installation %d deleted (it was not known here)", ev.ID), nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("installation %d on %s deleted: its projects deploy nothing", ev.ID, ev.AccountLogin), nil
	default:
		return fmt.Sprintf("ignored: installation %s", ev.Action), nil
	}
}

// accountType maps GitHub's account types onto the table's: anything unknown is a user.
func accountType(t string) string {
	switch t {
	case "Organization", "Enterprise":
		return t
	default:
		return "User"
	}
}

func pastTense(action string) string {
	switch action {
	case "created":
		return "recorded"
	case "unsuspend":
		return "unsuspended"
	default:
		return "updated (" + action + ")"
	}
}
