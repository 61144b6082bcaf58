package installations

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagely/stagely/webhook"
)

// RepositoriesHandler notes repositories added to or removed from an installation.
type RepositoriesHandler struct{ st Store }

// NewRepositoriesHandler returns the handler of installation_repositories webhooks.
func NewRepositoriesHandler(st Store) RepositoriesHandler { return RepositoriesHandler{st: st} }

// Handle says what changed, naming the projects whose repository the App can no longer
// read: they cannot deploy until the repository is granted again. Nothing is stored: GitHub
// is asked for the repositories whenever they are listed.
func (h RepositoriesHandler) Handle(ctx context.Context, _ int64, ev webhook.InstallationRepositories) (string, error) {
	var removed []string
	for _, r := range ev.Removed {
		ps, err := h.st.ProjectsByRepo(ctx, r.ID)
		if err != nil {
			return "", err
		}
		for _, p := range ps {
			removed = append(removed, fmt.Sprintf("%s (project %s can no longer deploy)", r.FullName, p.Name))
		}
	}
	msg := fmt.Sprintf("installation %d: %d repositories added, %d removed", ev.InstallationID, len(ev.Added), len(ev.Removed))
	if len(removed) > 0 {
		msg += ": " + strings.Join(removed, ", ")
	}
	return msg, nil
}
