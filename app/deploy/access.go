package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// A project deploys as the user who linked it: the agent gets the repository's source and a
// token to read it. So before each dispatch GitHub is asked whether that user may still push
// to the repository, which is what linking it took (app/api). A confirmed answer is kept
// accessTTL per user and repository, so a busy project asks GitHub once every few minutes,
// and a user removed from a repository stops deploying it within that time.

// accessTTL is how long GitHub's word that a user may push to a repository is taken as given.
const accessTTL = 5 * time.Minute

type accessKey struct{ userID, repoID int64 }

// accessCache holds, per user and repository, until when write access is taken as given.
// Only confirmed access is kept: a refusal is asked again, so restored access counts at once.
type accessCache struct {
	mu    sync.Mutex
	until map[accessKey]time.Time
}

func newAccessCache() *accessCache { return &accessCache{until: map[accessKey]time.Time{}} }

func (c *accessCache) valid(k accessKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(c.until[k])
}

func (c *accessCache) keep(k accessKey, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, t := range c.until {
		if !now.Before(t) {
			delete(c.until, key) // expired: the map holds live entries only
		}
	}
	c.until[k] = until
}

// ownerAccess says why the owner of p may not deploy it, or "" when they may. An error means
// GitHub could not tell, and the deployment waits for the next try.
func (o *Orchestrator) ownerAccess(ctx context.Context, gh GitHub, p store.Project) (string, error) {
	key, now := accessKey{p.UserID, p.RepoID}, o.opt.Now()
	if o.access.valid(key, now) {
		return "", nil
	}
	u, err := o.opt.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return "", err
	}
	relink := "a user with write access must relink the project"
	perm, err := gh.RepoPermission(ctx, p.RepoFullName, u.Login)
	switch {
	case errors.Is(err, github.ErrNotFound):
		return fmt.Sprintf("GitHub no longer knows %s (the account was renamed or deleted); %s", u.Login, relink), nil
	case err != nil:
		return "", fmt.Errorf("ask GitHub for %s's access to %s: %w", u.Login, p.RepoFullName, err)
	case perm.UserID != u.GitHubID:
		// Logins can be given up and taken by someone else: the id says who it is now.
		return fmt.Sprintf("the GitHub login %s now belongs to another account; %s", u.Login, relink), nil
	case !perm.CanPush():
		return fmt.Sprintf("%s no longer has write access to %s; %s", u.Login, p.RepoFullName, relink), nil
	}
	o.access.keep(key, now.Add(accessTTL), now)
	return "", nil
}
