package github

import (
	"context"
	"errors"
	"fmt"
	"slices"

	gh "github.com/google/go-github/v60/github"
)

var deploymentStates = []string{"queued", "in_progress", "success", "failure", "error", "inactive"}

// NewDeployment is a GitHub Deployment to create.
type NewDeployment struct {
	// Ref is the commit sha being deployed (a sha, so GitHub never resolves a moving branch).
	Ref string
	// Environment is the project's name; GitHub shows it in the repository's Environments.
	Environment string
	// Description is cut to 140 characters.
	Description string
	// Payload is free-form JSON kept with the deployment (our deployment id, for instance).
	Payload map[string]any
	// Transient marks an environment that goes away, a pull request's preview: it is sent as
	// transient_environment: true and production_environment: false. GitHub's auto_inactive
	// never touches such deployments: mark an earlier one inactive yourself.
	Transient bool
}

// PreviewEnvironment is the GitHub environment of pull request number's preview, "preview/pr-<n>".
func PreviewEnvironment(number int) string { return fmt.Sprintf("preview/pr-%d", number) }

// DeploymentStatus is one status of a GitHub Deployment.
type DeploymentStatus struct {
	// State is queued, in_progress, success, failure, error or inactive.
	State string
	// Description is cut to 140 characters, GitHub's documented maximum.
	Description string
	// LogURL links to the deployment's logs on Stagely (GitHub copies it to target_url).
	LogURL string
	// EnvironmentURL is where the deployed app answers, when known.
	EnvironmentURL string
	// AutoInactive is sent as given (GitHub's default is true): true marks earlier deployments to
	// the same environment inactive when this status is success.
	AutoInactive bool
}

// CreateDeployment creates a GitHub Deployment and returns its id. It always sends
// required_contexts: [] (Stagely's own check run and status are on the commit and still pending;
// GitHub would otherwise refuse with 409) and auto_merge: false (never merge a branch to deploy).
func (in *Installation) CreateDeployment(ctx context.Context, repo string, d NewDeployment) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	if d.Ref == "" {
		return 0, errors.New("create deployment: ref is required")
	}
	req := &gh.DeploymentRequest{
		Ref:              gh.String(d.Ref),
		Task:             gh.String("deploy"),
		AutoMerge:        gh.Bool(false),
		RequiredContexts: &[]string{},
		Description:      gh.String(truncateHead(d.Description, MaxDescriptionChars)),
	}
	if d.Environment != "" {
		req.Environment = gh.String(d.Environment)
	}
	if d.Payload != nil {
		req.Payload = d.Payload
	}
	if d.Transient {
		req.TransientEnvironment, req.ProductionEnvironment = gh.Bool(true), gh.Bool(false)
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return 0, fmt.Errorf("create deployment of %s: %w", d.Ref, err)
	}
	// The payload finds a deployment GitHub created although it answered 502; without one a
	// failed create is not sent again.
	id, err := writeOnce(ctx, in.conn, "create deployment", func() (int64, error) {
		dep, _, err := client.Repositories.CreateDeployment(ctx, owner, name, req)
		var accepted *gh.AcceptedError
		if errors.As(err, &accepted) {
			// 202 is GitHub's "merged branch" answer: nothing was deployed. auto_merge:false should prevent it.
			return 0, fmt.Errorf("GitHub merged instead of deploying: %s", accepted.Raw)
		}
		return dep.GetID(), apiError(err)
	}, func() (int64, bool, error) {
		id, err := in.FindDeployment(ctx, repo, d)
		if errors.Is(err, ErrNotFound) {
			return 0, false, nil
		}
		return id, err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("create deployment of %s: %w", d.Ref, err)
	}
	return id, nil
}

// CreateDeploymentStatus adds a status to a GitHub Deployment.
func (in *Installation) CreateDeploymentStatus(ctx context.Context, repo string, deploymentID int64, st DeploymentStatus) error {
	if !slices.Contains(deploymentStates, st.State) {
		return fmt.Errorf("create deployment status: state %q: want one of %v", st.State, deploymentStates)
	}
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	req := &gh.DeploymentStatusRequest{
		State:        gh.String(st.State),
		Description:  gh.String(truncateHead(st.Description, MaxDescriptionChars)),
		AutoInactive: gh.Bool(st.AutoInactive),
	}
	if st.LogURL != "" {
		req.LogURL = gh.String(st.LogURL)
	}
	if st.EnvironmentURL != "" {
		req.EnvironmentURL = gh.String(st.EnvironmentURL)
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return fmt.Errorf("create deployment %d status %s: %w", deploymentID, st.State, err)
	}
	err = writeOnceNoAnswer(ctx, in.conn, "create deployment status", func() error {
		_, _, err := client.Repositories.CreateDeploymentStatus(ctx, owner, name, deploymentID, req)
		return apiError(err)
	}, func() (bool, error) { return in.DeploymentStatusPosted(ctx, repo, deploymentID, st) })
	if err != nil {
		return fmt.Errorf("create deployment %d status %s: %w", deploymentID, st.State, err)
	}
	return nil
}
