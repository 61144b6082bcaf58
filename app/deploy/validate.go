package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// Validate checks stagely.yaml and the compose file at sha and reports the outcome as the
// `Stagely / validate` check run, with an annotation at the line of every problem. A repository
// with projects in several root directories gets one check run per root directory, named for
// its project (CheckName).
func (o *Orchestrator) Validate(ctx context.Context, installationID int64, repo webhook.Repo, sha string) (string, error) {
	projects, err := o.opt.Store.ProjectsByRepo(ctx, repo.ID)
	if err != nil {
		return "", err
	}
	if len(projects) == 0 {
		return fmt.Sprintf("ignored: no Stagely project for %s", repo.FullName), nil
	}
	in, err := o.opt.Store.InstallationByGitHubID(ctx, installationID)
	if store.IsNotFound(err) || (err == nil && !in.Active()) {
		return fmt.Sprintf("ignored: installation %d is not active", installationID), nil
	}
	if err != nil {
		return "", err
	}
	gh := o.opt.GitHub(installationID)
	// Projects of one root directory on other branches read the same files: the first is
	// validated; project_id mismatches are a deploy-time check of each project.
	seen := map[string]bool{}
	var titles []string
	for _, p := range projects {
		if seen[p.RootDirectory] {
			continue
		}
		seen[p.RootDirectory] = true
		title, err := o.validateProject(ctx, gh, p, sha)
		if err != nil {
			return "", err
		}
		if len(projects) > 1 && p.RootDirectory != "" {
			title += " (" + p.Name + ")"
		}
		titles = append(titles, title)
	}
	return fmt.Sprintf("validated %s: %s", short(sha), strings.Join(titles, "; ")), nil
}

// validateProject validates one project's configuration at sha as its validate check run,
// and returns the run's title.
func (o *Orchestrator) validateProject(ctx context.Context, gh GitHub, p store.Project, sha string) (string, error) {
	_, problems, err := loadConfig(ctx, gh, p, sha)
	if err != nil {
		return "", err
	}
	failures, warnings := 0, 0
	for _, p := range problems {
		if p.Level == stagelyyaml.LevelFailure {
			failures++
		} else {
			warnings++
		}
	}
	res := github.CheckRunResult{Conclusion: "success", Title: "Configuration is valid", Annotations: annotations(problems)}
	switch {
	case failures > 0:
		res.Conclusion = "failure"
		res.Title = fmt.Sprintf("%d problem(s) in the deploy configuration", failures)
	case warnings > 0:
		res.Title = fmt.Sprintf("Configuration is valid, with %d warning(s)", warnings)
	}
	res.Summary = validateSummary(problems)
	name := CheckName(CheckValidate, p)
	id, err := gh.CreateCheckRun(ctx, p.RepoFullName, github.NewCheckRun{Name: name, HeadSHA: sha, Status: "in_progress", Title: "Validating", Summary: "Reading stagely.yaml and the compose file."})
	if err != nil {
		return "", fmt.Errorf("create check run %s: %w", name, err)
	}
	if err := gh.CompleteCheckRun(ctx, p.RepoFullName, id, res); err != nil {
		return "", fmt.Errorf("complete check run %s: %w", name, err)
	}
	return res.Title, nil
}

func validateSummary(problems []stagelyyaml.Problem) string {
	if len(problems) == 0 {
		return "`stagely.yaml` and the compose file parse and agree with each other."
	}
	s := "| Where | Level | Problem |\n|---|---|---|\n"
	for _, p := range problems {
		where := p.Path
		if p.Line > 0 {
			where = fmt.Sprintf("%s:%d", p.Path, p.Line)
		}
		s += fmt.Sprintf("| `%s` | %s | %s |\n", where, p.Level, tableCell(p.Message))
	}
	return s
}

// tableCell keeps a message on one row of a markdown table.
func tableCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\r", " ", "\n", " ").Replace(s)
}
