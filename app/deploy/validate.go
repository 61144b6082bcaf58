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
// `Stagely / validate` check run, with an annotation at the line of every problem.
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
	// A repository linked to several projects is validated against the first; project_id
	// mismatches are a deploy-time check of each project.
	_, problems, err := loadConfig(ctx, gh, repo.FullName, sha, projects[0].PublicID)
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
	id, err := gh.CreateCheckRun(ctx, repo.FullName, github.NewCheckRun{Name: CheckValidate, HeadSHA: sha, Status: "in_progress", Title: "Validating", Summary: "Reading stagely.yaml and the compose file."})
	if err != nil {
		return "", fmt.Errorf("create validate check run: %w", err)
	}
	if err := gh.CompleteCheckRun(ctx, repo.FullName, id, res); err != nil {
		return "", fmt.Errorf("complete validate check run: %w", err)
	}
	return fmt.Sprintf("validated %s: %s", short(sha), res.Title), nil
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
