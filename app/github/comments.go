package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v60/github"
)

// MaxCommentChars is GitHub's limit on a comment's body; longer bodies are cut to it.
const MaxCommentChars = 65536

// ErrCommentNotFound matches (errors.Is) an update of a comment GitHub no longer has: someone
// deleted it. The caller creates a new one.
var ErrCommentNotFound = errors.New("comment not found on GitHub (deleted?)")

// commentError explains a refused comment: GitHub accepts pull_requests or issues write for a
// pull request's comments, and an installation made before Stagely asked for pull_requests:
// write has not granted it until the account's owner accepts the new permissions.
func commentError(err error) error {
	if errors.Is(err, ErrPermissionNotGranted) {
		return fmt.Errorf("%w: the App needs pull_requests: write; the account's owner must accept the App's new "+
			"permissions on GitHub (Settings → Applications → the App → Review request) before Stagely can comment", err)
	}
	return err
}

// CreateIssueComment comments on pull request (or issue) number and returns the comment's id
// (POST /repos/{owner}/{repo}/issues/{number}/comments). A failure that GitHub may have applied
// all the same (a 502) is not sent again while the App's own comment with the same body is
// there. A missing permission is ErrPermissionNotGranted.
func (in *Installation) CreateIssueComment(ctx context.Context, repo string, number int, body string) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	body = truncateHead(body, MaxCommentChars)
	_, client, err := in.clients(ctx)
	if err != nil {
		return 0, fmt.Errorf("comment on #%d in %s: %w", number, repo, err)
	}
	id, err := writeOnce(ctx, in.conn, "create comment", func() (int64, error) {
		c, _, err := client.Issues.CreateComment(ctx, owner, name, number, &gh.IssueComment{Body: gh.String(body)})
		return c.GetID(), apiError(err)
	}, func() (int64, bool, error) {
		id, err := in.findComment(ctx, repo, number, func(b string) bool { return b == body })
		if errors.Is(err, ErrNotFound) {
			return 0, false, nil
		}
		return id, err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("comment on #%d in %s: %w", number, repo, commentError(err))
	}
	return id, nil
}

// UpdateIssueComment replaces the body of comment id, in place
// (PATCH /repos/{owner}/{repo}/issues/comments/{id}). A deleted comment is ErrCommentNotFound
// (and ErrNotFound); a missing permission is ErrPermissionNotGranted.
func (in *Installation) UpdateIssueComment(ctx context.Context, repo string, id int64, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	body = truncateHead(body, MaxCommentChars)
	_, client, err := in.clients(ctx)
	if err != nil {
		return fmt.Errorf("update comment %d in %s: %w", id, repo, err)
	}
	// The update replaces the body, so sending it again is harmless.
	err = writeOnceNoAnswer(ctx, in.conn, "update comment", func() error {
		_, _, err := client.Issues.EditComment(ctx, owner, name, id, &gh.IssueComment{Body: gh.String(body)})
		return apiError(err)
	}, func() (bool, error) { return false, nil })
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("update comment %d in %s: %w: %w", id, repo, ErrCommentNotFound, err)
	case err != nil:
		return fmt.Errorf("update comment %d in %s: %w", id, repo, commentError(err))
	}
	return nil
}

// FindIssueComment returns the id of the App's own newest comment on pull request (or issue)
// number whose body contains marker, or ErrNotFound. Comments by people, or by other Apps, are
// never matched, whatever they say.
func (in *Installation) FindIssueComment(ctx context.Context, repo string, number int, marker string) (int64, error) {
	if marker == "" {
		return 0, errors.New("find comment: marker is required")
	}
	id, err := in.findComment(ctx, repo, number, func(b string) bool { return strings.Contains(b, marker) })
	if err != nil {
		return 0, fmt.Errorf("find comment on #%d in %s: %w", number, repo, commentError(err))
	}
	return id, nil
}

// findComment is the newest comment of the App on number whose body match accepts, or ErrNotFound.
func (in *Installation) findComment(ctx context.Context, repo string, number int, match func(body string) bool) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	app, client, err := in.clients(ctx)
	if err != nil {
		return 0, err
	}
	u := fmt.Sprintf("repos/%s/%s/issues/%d/comments", url.PathEscape(owner), url.PathEscape(name), number)
	comments, err := allPages(func(o *gh.ListOptions) ([]commentReply, *gh.Response, error) {
		req, err := client.NewRequest(http.MethodGet, fmt.Sprintf("%s?per_page=%d&page=%d", u, o.PerPage, max(o.Page, 1)), nil)
		if err != nil {
			return nil, nil, err
		}
		var page []commentReply
		resp, err := client.Do(ctx, req, &page)
		return page, resp, err
	})
	if err != nil {
		return 0, err
	}
	for i := len(comments) - 1; i >= 0; i-- {
		if c := comments[i]; c.App != nil && c.App.ID == app.appID && match(c.Body) {
			return c.ID, nil
		}
	}
	return 0, ErrNotFound
}

// commentReply is a comment as GitHub lists it; go-github's IssueComment lacks
// performed_via_github_app, which tells the App's own comments from everyone else's.
type commentReply struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
	App  *struct {
		ID int64 `json:"id"`
	} `json:"performed_via_github_app"`
}
