package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// GitHub answers 502 when its front end gives up on a backend that may still carry the write
// out, and a connection can drop after a request went out: either way the write may be on
// GitHub although the call failed. Writes are therefore never resent blind. After such a
// failure a write asks GitHub whether it holds the write already (a lookup) and sends it again
// only if not. The lookups are exported too, for a report retried later to ask the same.

// maybeApplied says whether a failed write may have been carried out all the same.
func maybeApplied(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500
	}
	var uerr *url.Error
	return errors.As(err, &uerr)
}

// errNoLookup stops the retries of a write that nothing identifies on GitHub.
var errNoLookup = errors.New("nothing identifies this write on GitHub")

// writeOnce makes a write (send) that must land once. After a failure that may have been
// applied it waits, asks lookup whether GitHub holds the write, and sends it again only when
// GitHub says it does not; a lookup that fails ends the attempts with the write's error, since
// sending blind could write twice.
func writeOnce[T any](ctx context.Context, c *conn, what string, send func() (T, error), lookup func() (T, bool, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := send()
		if err == nil || !maybeApplied(err) || attempt >= c.maxRetries || ctx.Err() != nil {
			return v, err
		}
		wait := backoff(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return v, err
		}
		c.log.WarnContext(ctx, "github write failed and may have been applied; checking before sending it again",
			"write", what, "err", err, "wait", wait, "attempt", attempt+1)
		if serr := c.sleep(ctx, wait); serr != nil {
			return v, err
		}
		found, ok, lerr := lookup()
		if lerr != nil {
			// The lookup's error is only told: a 404 of it must not make the write look permanent.
			return v, fmt.Errorf("%w (and whether GitHub applied it is unknown: %v)", err, lerr)
		}
		if ok {
			c.log.InfoContext(ctx, "github write had been applied", "write", what)
			return found, nil
		}
	}
}

// writeOnceNoAnswer is writeOnce for a write whose answer is not needed: posted says whether
// GitHub holds the write already.
func writeOnceNoAnswer(ctx context.Context, c *conn, what string, send func() error, posted func() (bool, error)) error {
	_, err := writeOnce(ctx, c, what, func() (struct{}, error) {
		return struct{}{}, send()
	}, func() (struct{}, bool, error) {
		ok, err := posted()
		return struct{}{}, ok, err
	})
	return err
}

// newest lists the newest 100 statuses (of a commit, or of a deployment) in repo through list:
// one page, far more than one deployment writes. what names them in errors.
func newest[S any](ctx context.Context, in *Installation, repo, what string,
	list func(c *gh.Client, owner, name string, o *gh.ListOptions) ([]S, *gh.Response, error)) ([]S, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	got, _, err := list(client, owner, name, &gh.ListOptions{PerPage: 100})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, apiError(err))
	}
	return got, nil
}

// FindCheckRun returns the id of the check run named name on sha whose external_id is
// externalID, or ErrNotFound.
func (in *Installation) FindCheckRun(ctx context.Context, repo, sha, name, externalID string) (int64, error) {
	owner, repoName, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	if externalID == "" {
		return 0, fmt.Errorf("find check run %q on %s: %w", name, sha, errNoLookup)
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return 0, fmt.Errorf("find check run %q on %s: %w", name, sha, err)
	}
	runs, err := allPages(func(o *gh.ListOptions) ([]*gh.CheckRun, *gh.Response, error) {
		res, resp, err := client.Checks.ListCheckRunsForRef(ctx, owner, repoName, sha, &gh.ListCheckRunsOptions{
			CheckName: gh.String(name), Filter: gh.String("all"), ListOptions: *o,
		})
		if err != nil {
			return nil, resp, err
		}
		return res.CheckRuns, resp, nil
	})
	if err != nil {
		return 0, fmt.Errorf("find check run %q on %s: %w", name, sha, err)
	}
	for _, r := range runs {
		if r.GetExternalID() == externalID {
			return r.GetID(), nil
		}
	}
	return 0, fmt.Errorf("find check run %q with external id %s on %s: %w", name, externalID, sha, ErrNotFound)
}

// checkRunState is what a check run holds now.
type checkRunState struct {
	status, conclusion string
	annotations        int
}

func (in *Installation) checkRunState(ctx context.Context, repo string, id int64) (checkRunState, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return checkRunState{}, err
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return checkRunState{}, err
	}
	run, _, err := client.Checks.GetCheckRun(ctx, owner, name, id)
	if err != nil {
		return checkRunState{}, fmt.Errorf("get check run %d: %w", id, apiError(err))
	}
	return checkRunState{status: run.GetStatus(), conclusion: run.GetConclusion(), annotations: run.GetOutput().GetAnnotationsCount()}, nil
}

// StatusPosted says whether the newest commit status of st's context on sha is st (state,
// description as CreateStatus cuts it, target URL): whether posting st would repeat it.
func (in *Installation) StatusPosted(ctx context.Context, repo, sha string, st CommitStatus) (bool, error) {
	ctxName := st.Context
	if ctxName == "" {
		ctxName = DefaultStatusContext
	}
	// Newest first.
	list, err := newest(ctx, in, repo, "statuses of "+sha, func(c *gh.Client, owner, name string, o *gh.ListOptions) ([]*gh.RepoStatus, *gh.Response, error) {
		return c.Repositories.ListStatuses(ctx, owner, name, sha, o)
	})
	if err != nil {
		return false, err
	}
	for _, s := range list {
		if strings.EqualFold(s.GetContext(), ctxName) {
			return s.GetState() == st.State && s.GetDescription() == truncateHead(st.Description, MaxDescriptionChars) &&
				s.GetTargetURL() == st.TargetURL, nil
		}
	}
	return false, nil
}

// FindDeployment returns the id of the GitHub deployment of d.Ref to d.Environment that carries
// d.Payload, or ErrNotFound. The payload is what tells one deployment from another.
func (in *Installation) FindDeployment(ctx context.Context, repo string, d NewDeployment) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	if d.Payload == nil {
		return 0, fmt.Errorf("find deployment of %s: %w", d.Ref, errNoLookup)
	}
	want, err := roundTrip(d.Payload)
	if err != nil {
		return 0, fmt.Errorf("find deployment of %s: %w", d.Ref, err)
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return 0, fmt.Errorf("find deployment of %s: %w", d.Ref, err)
	}
	list, err := allPages(func(o *gh.ListOptions) ([]*gh.Deployment, *gh.Response, error) {
		return client.Repositories.ListDeployments(ctx, owner, name, &gh.DeploymentsListOptions{
			Ref: d.Ref, Environment: d.Environment, Task: "deploy", ListOptions: *o,
		})
	})
	if err != nil {
		return 0, fmt.Errorf("find deployment of %s: %w", d.Ref, err)
	}
	for _, dep := range list {
		var got any
		if json.Unmarshal(dep.Payload, &got) == nil && reflect.DeepEqual(got, want) {
			return dep.GetID(), nil
		}
	}
	return 0, fmt.Errorf("find deployment of %s to %s: %w", d.Ref, d.Environment, ErrNotFound)
}

// roundTrip gives v as it reads back from JSON, to compare with what GitHub returns.
func roundTrip(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

// DeploymentStatusPosted says whether GitHub deployment id already has st (state, description
// as CreateDeploymentStatus cuts it, log URL) among its newest 100 statuses.
func (in *Installation) DeploymentStatusPosted(ctx context.Context, repo string, id int64, st DeploymentStatus) (bool, error) {
	list, err := newest(ctx, in, repo, fmt.Sprintf("statuses of deployment %d", id), func(c *gh.Client, owner, name string, o *gh.ListOptions) ([]*gh.DeploymentStatus, *gh.Response, error) {
		return c.Repositories.ListDeploymentStatuses(ctx, owner, name, id, o)
	})
	if err != nil {
		return false, err
	}
	for _, s := range list {
		if s.GetState() == st.State && s.GetDescription() == truncateHead(st.Description, MaxDescriptionChars) && s.GetLogURL() == st.LogURL {
			return true, nil
		}
	}
	return false, nil
}
