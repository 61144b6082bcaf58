package webhook

import (
	"time"

	"github.com/google/go-github/v60/github"
)

// Installation is an installation event: the App was installed, removed, suspended,
// unsuspended, or had new permissions accepted.
type Installation struct {
	// Action is "created", "deleted", "suspend", "unsuspend" or "new_permissions_accepted".
	Action string
	// ID is the installation id.
	ID int64
	// AppID is the App installed.
	AppID int64
	// AccountLogin is the user or organization the App is installed on.
	AccountLogin string
	// AccountID is that account's id.
	AccountID int64
	// AccountType is "User" or "Organization".
	AccountType string
	// SuspendedAt is the zero time unless the installation is suspended.
	SuspendedAt time.Time
	// Repositories lists the repositories granted at installation ("created"); GitHub
	// sends only id and names, so DefaultBranch is empty.
	Repositories []Repo
}

// EventName returns "installation".
func (Installation) EventName() string { return EventInstallation }
func (Installation) sealed()           {}

// Suspended reports whether the installation is suspended and must deploy nothing.
func (i Installation) Suspended() bool { return !i.SuspendedAt.IsZero() }

func installationFrom(e *github.InstallationEvent) (Installation, error) {
	inst := e.GetInstallation()
	i := Installation{
		Action:       e.GetAction(),
		ID:           inst.GetID(),
		AppID:        inst.GetAppID(),
		AccountLogin: inst.GetAccount().GetLogin(),
		AccountID:    inst.GetAccount().GetID(),
		AccountType:  inst.GetAccount().GetType(),
		Repositories: reposFrom(e.Repositories),
	}
	if at := inst.GetSuspendedAt(); !at.IsZero() {
		i.SuspendedAt = at.UTC()
	}
	return complete(i, required{"action", i.Action == ""}, required{"installation.id", i.ID == 0})
}
