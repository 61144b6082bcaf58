package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// commentMarker tags the one comment Stagely keeps on a pull request for a project's
// preview, so a lost comment id is found again rather than a second comment made.
func commentMarker(p store.Project) string {
	return fmt.Sprintf("<!-- stagely:preview:%d -->", p.ID)
}

// commentBody is the preview's pull request comment: its state, URLs and commit.
func (o *Orchestrator) commentBody(p store.Project, pv store.Preview) string {
	var b strings.Builder
	b.WriteString(commentMarker(p) + "\n")
	fmt.Fprintf(&b, "**Stagely preview** of `%s` for project **%s**: ", short(pv.HeadSHA), p.Name)
	switch pv.State {
	case store.PreviewAwaitingApproval:
		b.WriteString("waiting for a user with write access to press **Deploy preview** on the `" + CheckPreview + "` check run.\n")
	case store.PreviewQueued:
		b.WriteString("queued.\n")
	case store.PreviewDeploying:
		b.WriteString("deploying…\n")
	case store.PreviewLive:
		b.WriteString("live.\n")
	case store.PreviewFailed:
		b.WriteString("the deploy failed; see the `" + CheckPreview + "` check run.\n")
	case store.PreviewStopping:
		b.WriteString("stopping (" + pv.StopReason + ").\n")
	case store.PreviewStopped:
		b.WriteString("stopped (" + pv.StopReason + "); nothing of it is left on the server.\n")
	}
	urls := pv.URLMap()
	if len(urls) > 0 && pv.State != store.PreviewStopped {
		b.WriteString("\n| Service | URL |\n| --- | --- |\n")
		for _, name := range slices.Sorted(maps.Keys(urls)) {
			fmt.Fprintf(&b, "| %s | %s |\n", name, urls[name])
		}
	}
	fmt.Fprintf(&b, "\n[Deployments of %s](%s/projects/%d)\n", p.Name, o.opt.PublicURL, p.ID)
	return b.String()
}

// writeComment creates or updates, in place, the preview's pull request comment. An
// installation that has not accepted pull_requests: write gets no comment; the check run
// and the GitHub deployment still carry the URLs.
func (o *Orchestrator) writeComment(ctx context.Context, gh GitHub, p store.Project, pv store.Preview) error {
	body := o.commentBody(p, pv)
	if pv.CommentID.Valid {
		err := gh.UpdateIssueComment(ctx, p.RepoFullName, pv.CommentID.Int64, body)
		if !errors.Is(err, github.ErrCommentNotFound) {
			return o.commentErr(err)
		}
		// Deleted by someone: a new one takes its place.
	} else if id, err := gh.FindIssueComment(ctx, p.RepoFullName, pv.PRNumber, commentMarker(p)); err == nil {
		if err := gh.UpdateIssueComment(ctx, p.RepoFullName, id, body); err != nil {
			return o.commentErr(err)
		}
		return o.opt.Store.SetPreviewGitHub(ctx, pv.ID, &id, nil)
	} else if !errors.Is(err, github.ErrNotFound) {
		return o.commentErr(err)
	}
	id, err := gh.CreateIssueComment(ctx, p.RepoFullName, pv.PRNumber, body)
	if err != nil {
		return o.commentErr(err)
	}
	return o.opt.Store.SetPreviewGitHub(ctx, pv.ID, &id, nil)
}

// commentErr drops the refusal of an installation without pull_requests: write, which is
// the owner's to accept (docs/previews.md), after saying so.
func (o *Orchestrator) commentErr(err error) error {
	if errors.Is(err, github.ErrPermissionNotGranted) {
		o.log.Warn("no pull request comment: the GitHub App's owner has not accepted pull_requests: write", "err", err)
		return nil
	}
	return err
}
