package deploy

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// watching keeps the projects a push concerns: those with a changed file under their root
// directory or matching their stagely.yaml's watch_paths (stagelyyaml.Watch), and says why it
// left the others out: "ignored: no change under services/api/ (4 files changed)". A push
// whose changed files cannot be known (a new branch, a forced push, more than GitHub lists)
// concerns every project. A project whose stagely.yaml has failures watches its root directory
// alone: a change there (the broken file itself, say) deploys, and the deployment says why it
// fails.
func (o *Orchestrator) watching(ctx context.Context, projects []store.Project, ev webhook.Push) ([]store.Project, string, error) {
	in, err := o.opt.Store.InstallationByID(ctx, projects[0].InstallationID)
	if err != nil || !in.Active() {
		return projects, "", err
	}
	gh := o.opt.GitHub(in.GitHubID)
	var (
		kept    []store.Project
		skipped []string
		changed *changeSet
	)
	for _, p := range projects {
		w, err := projectWatch(ctx, gh, p, ev.After)
		if err != nil {
			return nil, "", err
		}
		if !w.Narrowed() {
			kept = append(kept, p)
			continue
		}
		if changed == nil {
			if changed, err = changedFiles(ctx, gh, ev); err != nil {
				return nil, "", err
			}
		}
		if !changed.known || changed.concerns(w) {
			kept = append(kept, p)
			continue
		}
		skipped = append(skipped, unwatchedNote(p, w, len(projects) > 1))
	}
	if len(skipped) == 0 {
		return kept, "", nil
	}
	return kept, fmt.Sprintf("ignored: %s (%s changed)", strings.Join(skipped, ", "), plural(len(changed.files), "file")), nil
}

// unwatchedNote says what a push did not touch: "no change under services/api/", with the
// project's name when the push concerns several.
func unwatchedNote(p store.Project, w stagelyyaml.Watch, several bool) string {
	note := "no change under " + w.Root() + "/"
	switch {
	case w.Root() == "":
		note = "no change in watch_paths"
	case w.HasPatterns():
		note += " or in watch_paths"
	}
	if several {
		note = p.Name + ": " + note
	}
	return note
}

// projectWatch reads the watch of project p at sha: its root directory and the watch_paths of
// its stagely.yaml. A stagely.yaml with failures (or none) gives the root directory alone.
func projectWatch(ctx context.Context, gh GitHub, p store.Project, sha string) (stagelyyaml.Watch, error) {
	name := path.Join(p.RootDirectory, stagelyyaml.FileName)
	raw, err := gh.ReadFile(ctx, p.RepoFullName, name, sha)
	if err != nil && !errors.Is(err, github.ErrNotFound) {
		return stagelyyaml.Watch{}, fmt.Errorf("read %s at %s: %w", name, short(sha), err)
	}
	cfg, problems := stagelyyaml.Parse(raw)
	if stagelyyaml.HasFailure(problems) {
		cfg.WatchPaths = nil
	}
	w, err := stagelyyaml.NewWatch(p.RootDirectory, cfg.WatchPaths)
	if err != nil {
		// Parse refused the pattern already; a watch of the root directory alone is the
		// fallback, and the deployment reports the problem.
		return stagelyyaml.NewWatch(p.RootDirectory, nil)
	}
	return w, nil
}

// changeSet is what a push changed; known is false when it cannot be told.
type changeSet struct {
	files []string
	known bool
}

// concerns reports whether a changed file is watched by w.
func (c *changeSet) concerns(w stagelyyaml.Watch) bool {
	for _, f := range c.files {
		if w.Matches(f) {
			return true
		}
	}
	return false
}

// changedFiles lists what a push changed: from the payload's commits, or, when GitHub may
// have cut that list (webhook.TrustedPushCommits), from the compare API (300 files at most).
func changedFiles(ctx context.Context, gh GitHub, ev webhook.Push) (*changeSet, error) {
	if files, ok := ev.ChangedFiles(); ok {
		return &changeSet{files: files, known: true}, nil
	}
	if ev.Created || ev.Forced || isZeroSHA(ev.Before) {
		return &changeSet{}, nil
	}
	files, complete, err := gh.ChangedFiles(ctx, ev.Repo.FullName, ev.Before, ev.After)
	if errors.Is(err, github.ErrNotFound) {
		return &changeSet{}, nil // GitHub no longer has the old head: deploy
	}
	if err != nil {
		return nil, fmt.Errorf("list the files %s changed: %w", short(ev.After), err)
	}
	return &changeSet{files: files, known: complete}, nil
}

// plural writes "1 file" or "4 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
