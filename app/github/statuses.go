package github

import (
	"context"
	"fmt"
	"slices"

	gh "github.com/google/go-github/v60/github"
)

// DefaultStatusContext is the commit-status context Stagely reports deploys under.
const DefaultStatusContext = "stagely/deploy"

var statusStates = []string{"pending", "success", "failure", "error"}

// CommitStatus is one commit status to post.
type CommitStatus struct {
	// State is pending, success, failure or error.
	State string
	// Context names the status; empty means DefaultStatusContext.
	Context string
	// Description is cut to 140 characters, ending in "…", since GitHub refuses longer ones with a 422.
	Description string
	// TargetURL links to the deployment's page on Stagely.
	TargetURL string
}

// CreateStatus posts a commit status on sha.
func (in *Installation) CreateStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	if !slices.Contains(statusStates, st.State) {
		return fmt.Errorf("create status on %s: state %q: want one of %v", sha, st.State, statusStates)
	}
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	ctxName := st.Context
	if ctxName == "" {
		ctxName = DefaultStatusContext
	}
	body := &gh.RepoStatus{
		State:       gh.String(st.State),
		Context:     gh.String(ctxName),
		Description: gh.String(truncateHead(st.Description, MaxDescriptionChars)),
	}
	if st.TargetURL != "" {
		body.TargetURL = gh.String(st.TargetURL)
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return fmt.Errorf("create status %s on %s: %w", ctxName, sha, err)
	}
	err = writeOnceNoAnswer(ctx, in.conn, "create status", func() error {
		_, _, err := client.Repositories.CreateStatus(ctx, owner, name, sha, body)
		return apiError(err)
	}, func() (bool, error) { return in.StatusPosted(ctx, repo, sha, st) })
	if err != nil {
		return fmt.Errorf("create status %s on %s: %w", ctxName, sha, err)
	}
	return nil
}
