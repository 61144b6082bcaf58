package webhook

import "github.com/google/go-github/v60/github"

// InstallationRepositories is an installation_repositories event: repositories were
// added to or removed from an installation.
type InstallationRepositories struct {
	// Action is "added" or "removed".
	Action string
	// InstallationID is the installation changed.
	InstallationID int64
	// Added are the repositories granted; GitHub sends only id and names.
	Added []Repo
	// Removed are the repositories withdrawn; projects on them can no longer deploy.
	Removed []Repo
	// Selection is "all" or "selected".
	Selection string
}

// EventName returns "installation_repositories".
func (InstallationRepositories) EventName() string { return EventInstallationRepositories }
func (InstallationRepositories) sealed()           {}

func installationRepositoriesFrom(e *github.InstallationRepositoriesEvent) (InstallationRepositories, error) {
	ir := InstallationRepositories{
		Action:         e.GetAction(),
		InstallationID: e.GetInstallation().GetID(),
		Added:          reposFrom(e.RepositoriesAdded),
		Removed:        reposFrom(e.RepositoriesRemoved),
		Selection:      e.GetRepositorySelection(),
	}
	return complete(ir, required{"action", ir.Action == ""}, required{"installation.id", ir.InstallationID == 0})
}
