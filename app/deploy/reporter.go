package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/app/stagelyyaml"
	"github.com/stagely/stagely/store"
)

// GitHub hears about a deployment through three things on its commit: the check run
// `Stagely / deploy`, the commit status `stagely/deploy` and a GitHub deployment. A report
// gathers what it says from the store first, renders it, and then writes what its stage
// writes (stageWrites), in the same order every time.

// maxTitleBytes bounds a progress report's check-run title, as GitHub shows a title on one line.
const maxTitleBytes = 120

// logTailLines is how much of the deployment's log goes into the check run's text.
const logTailLines = 300

// stage is a point in a deployment's life that GitHub is told about.
type stage string

const (
	stageQueued     stage = "queued"
	stageStarted    stage = "started"
	stagePlanned    stage = "planned" // started, and the agent sent its plan
	stageFinished   stage = "finished"
	stageSuperseded stage = "superseded"
)

// checkRunWrite is what a stage does to the check run.
type checkRunWrite int

const (
	// createCheckRun creates the check run.
	createCheckRun checkRunWrite = iota
	// updateCheckRun updates it if it exists: a missing one is left to the final report.
	updateCheckRun
	// completeCheckRun completes it, creating it first if the queued report could not.
	completeCheckRun
)

// stageWrites is what each stage writes to GitHub. Every stage also adds a status to the
// GitHub deployment, once it exists.
var stageWrites = map[stage]struct {
	checkRun checkRunWrite
	// commitStatus sets the commit status.
	commitStatus bool
	// deployment creates the GitHub deployment, if there is none yet.
	deployment bool
	// final reports stop at the first write GitHub refuses and return it, so the deployment's
	// reported_status stays behind and the sweeper retries; the others log each refusal and
	// carry on, leaving what is missing to the final report.
	final bool
}{
	stageQueued:     {checkRun: createCheckRun, commitStatus: true, deployment: true},
	stageStarted:    {checkRun: updateCheckRun},
	stagePlanned:    {checkRun: updateCheckRun},
	stageFinished:   {checkRun: completeCheckRun, commitStatus: true, deployment: true, final: true},
	stageSuperseded: {checkRun: completeCheckRun, commitStatus: true, final: true},
}

// facts is everything a report says, read from the store before the first GitHub call.
type facts struct {
	gh GitHub
	p  store.Project
	d  *store.Deployment
	// retry is true when an earlier attempt at this final report may have made some of its
	// writes: each write asks GitHub first, so none is made twice.
	retry bool
	// problems are stagely.yaml's: warnings when started, annotations when finished.
	problems []stagelyyaml.Problem
	// agent is the name of the agent the deployment runs on (started, planned).
	agent string
	// plan is what the agent said the swap will change (planned).
	plan *protocol.Plan
	// services are the agent's per-service table (finished).
	services []protocol.ServiceStatus
	// logTail is the end of the deployment's log (finished).
	logTail []string
	// rolledBackTo is the commit a rolled-back deployment went back to (finished).
	rolledBackTo string
	// canRollBack is true when an earlier successful deployment of another commit exists (finished).
	canRollBack bool
	// supersededBy is the newer deployment that replaced this one, if it is still there (superseded).
	supersededBy *store.Deployment
	// urls are a preview's URLs by service (a preview's deployments).
	urls map[string]string
}

// rendition is a report in GitHub's terms.
type rendition struct {
	title, summary, text string
	// checkStatus is the status of a check run created or updated by the report.
	checkStatus string
	// conclusion completes the check run (final reports).
	conclusion  string
	commitState string
	deployState string
	// autoInactive makes GitHub mark the environment's earlier deployments inactive.
	autoInactive bool
	actions      []github.Action
	annotations  []github.Annotation
}

// reportProgress tells GitHub that d was queued or has started; d learns the ids of what the
// report creates. It is best effort: what GitHub refuses is logged, and the final report
// creates what is missing.
func (o *Orchestrator) reportProgress(ctx context.Context, st stage, p store.Project, d *store.Deployment, problems []stagelyyaml.Problem) {
	if err := o.report(ctx, st, p, d, problems); err != nil {
		o.log.Warn("report deployment to GitHub", "stage", st, "deployment", d.ID, "err", err)
	}
}

// report gathers, renders and sends the report of stage st. A preview's teardown reports
// nothing of its own: its preview's GitHub deployment and comment say it stopped.
func (o *Orchestrator) report(ctx context.Context, st stage, p store.Project, d *store.Deployment, problems []stagelyyaml.Problem) error {
	if d.Trigger == store.TriggerPreviewStop {
		return nil
	}
	f, err := o.gather(ctx, st, p, d, problems)
	if err != nil {
		return err
	}
	return o.send(ctx, st, f, o.render(st, f))
}

// gather reads what the stage's report says.
func (o *Orchestrator) gather(ctx context.Context, st stage, p store.Project, d *store.Deployment, problems []stagelyyaml.Problem) (facts, error) {
	f := facts{p: p, d: d, problems: problems, retry: d.ReportAttempts > 0}
	var err error
	if f.gh, err = o.githubFor(ctx, p); err != nil {
		return f, err
	}
	if d.IsPreview() {
		pv, err := o.opt.Store.PreviewByNumber(ctx, p.ID, store.PreviewNumber(d.Environment))
		if err != nil {
			return f, err
		}
		f.urls = pv.URLMap()
	}
	switch st {
	case stageStarted:
		agentID := p.AgentID.Int64
		if d.AgentID.Valid {
			agentID = d.AgentID.Int64 // a preview may run on the project's preview agent
		}
		f.agent = fmt.Sprint(agentID)
		if a, err := o.opt.Store.AgentByID(ctx, agentID); err == nil {
			f.agent = a.Name
		}
	case stageSuperseded:
		if d.SupersededBy.Valid {
			if nd, err := o.opt.Store.DeploymentByID(ctx, d.SupersededBy.Int64); err == nil {
				f.supersededBy = &nd
			}
		}
	case stageFinished:
		return f, o.gatherFinished(ctx, &f)
	}
	return f, nil
}

func (o *Orchestrator) gatherFinished(ctx context.Context, f *facts) error {
	st, d := o.opt.Store, f.d
	if len(d.Services) > 0 {
		if err := json.Unmarshal(d.Services, &f.services); err != nil {
			return fmt.Errorf("read services of deployment #%d: %w", d.ID, err)
		}
	}
	lines, err := st.LogTail(ctx, d.ID, logTailLines)
	if err != nil {
		return err
	}
	for _, l := range lines {
		f.logTail = append(f.logTail, l.Line)
	}
	if d.Status == store.DeploymentRolledBack {
		if prev, err := st.LastSuccessful(ctx, f.p.ID, d.Environment, d.ID); err == nil {
			f.rolledBackTo = prev.SHA
		}
	}
	if !d.IsPreview() {
		_, err = st.PreviousGood(ctx, f.p.ID, d.ID, d.SHA)
		f.canRollBack = err == nil
	}
	return nil
}

// render words the report of stage st.
func (o *Orchestrator) render(st stage, f facts) rendition {
	d, sha := f.d, short(f.d.SHA)
	switch st {
	case stageQueued:
		title := fmt.Sprintf("Queued: %s to %s", sha, f.p.Name)
		return rendition{title: title, summary: fmt.Sprintf("Deployment #%d of `%s` (%s) is queued.", d.ID, sha, d.Trigger),
			checkStatus: "queued", commitState: "pending", deployState: "queued"}
	case stageStarted:
		summary := fmt.Sprintf("Deployment #%d of `%s` is running on agent **%s**.", d.ID, sha, f.agent)
		if len(f.problems) > 0 {
			summary += "\n\nWarnings:\n"
			for _, w := range f.problems {
				summary += "- `" + w.String() + "`\n"
			}
		}
		return rendition{title: fmt.Sprintf("Deploying %s to %s", sha, f.agent), summary: summary,
			checkStatus: "in_progress", deployState: "in_progress"}
	case stagePlanned:
		// The agent's words go in a code span, so no name can add markdown of its own.
		line := strings.ReplaceAll(f.plan.String(), "`", "'")
		summary := fmt.Sprintf("Deployment #%d of `%s` is running on agent **%s**.\n\n**Plan:** `%s`\n", d.ID, sha, f.agent, line)
		title := protocol.Truncate(fmt.Sprintf("Deploying %s to %s: %s", sha, f.agent, line), maxTitleBytes)
		return rendition{title: title, summary: summary,
			checkStatus: "in_progress", deployState: "in_progress"}
	}
	out := rendition{checkStatus: "in_progress", annotations: annotations(f.problems), autoInactive: d.Status == store.DeploymentSuccess}
	out.conclusion, out.commitState, out.deployState = conclusion(d.Status)
	if st == stageSuperseded {
		out.title, out.summary = supersededText(*d, f.supersededBy)
		return out
	}
	out.title, out.summary, out.text = github.Summary(finishedReport(f))
	if f.d.IsPreview() && f.d.Status == store.DeploymentSuccess {
		out.title = fmt.Sprintf("Preview of %s is live", sha)
	}
	out.summary = urlList(f.urls) + out.summary
	out.actions = []github.Action{{Label: "Redeploy", Description: "Deploy this commit again", Identifier: ActionRedeploy}}
	if f.canRollBack {
		out.actions = append(out.actions, github.Action{Label: "Roll back", Description: "Deploy the previous good commit", Identifier: ActionRollback})
	}
	return out
}

// finishedReport is what the check run of a finished deployment tells.
func finishedReport(f facts) github.Report {
	d := f.d
	rep := github.Report{Status: d.Status, SHA: d.SHA, Environment: f.p.Name, Error: d.Error, RolledBackTo: f.rolledBackTo, LogTail: f.logTail}
	if d.FinishedAt.Valid {
		start := d.CreatedAt
		if d.StartedAt.Valid {
			start = d.StartedAt.Time
		}
		rep.Duration = d.FinishedAt.Time.Sub(start)
	}
	rep.Plan = planOf(f.services)
	for _, s := range f.services {
		rep.Services = append(rep.Services, github.ServiceRow{Name: s.Name, State: s.State, Health: s.Health, ContainerID: s.ContainerID})
		if len(s.LogTail) > 0 && rep.FailedService == "" {
			rep.FailedService = s.Name
		}
	}
	return rep
}

// planOf words the plan the agent reported with each service's status, or "" when it
// reported none (the job ended before its plan was known, or an older agent ran it). A
// change word this server does not know (from a newer agent) is shown as the agent said it.
func planOf(services []protocol.ServiceStatus) string {
	var p protocol.Plan
	var other []string
	known := false
	for _, s := range services {
		lists := p.Lists()
		i := slices.IndexFunc(lists, func(l protocol.PlanList) bool { return l.Change == s.Change })
		switch {
		case i >= 0:
			*lists[i].Names = append(*lists[i].Names, s.Name)
			known = true
		case s.Change != "":
			other = append(other, s.Change+": "+s.Name)
		}
	}
	switch {
	case known && (len(other) == 0 || !p.Empty()):
		other = append([]string{p.String()}, other...)
	case known:
		// An unknown word may be a change: "nothing to change" could be untrue.
		for _, l := range slices.Backward(p.Lists()) {
			if len(*l.Names) > 0 {
				other = append([]string{l.Change + ": " + strings.Join(*l.Names, ", ")}, other...)
			}
		}
	}
	return strings.Join(other, " · ")
}

// supersededText explains a deployment that never ran because a newer one replaced it.
func supersededText(d store.Deployment, by *store.Deployment) (title, summary string) {
	title, newer := "Skipped: superseded by a newer push", "a newer deployment"
	if by != nil {
		title = fmt.Sprintf("Skipped: superseded by %s", short(by.SHA))
		newer = fmt.Sprintf("`%s` (#%d)", short(by.SHA), by.ID)
	}
	if by != nil && by.ID < d.ID {
		// The newer push reached Stagely first: this one came late (recovered after an outage,
		// or delivered out of order by GitHub), and deploying it would roll the branch back.
		return title, fmt.Sprintf("The push of `%s` reached Stagely after %s, a newer push to the same branch, so it is not deployed: deploying it would roll the branch back.", short(d.SHA), newer)
	}
	return title, fmt.Sprintf("Deployment #%d of `%s` was still queued when %s was pushed to the same branch, so only the newer commit is deployed.", d.ID, short(d.SHA), newer)
}

// send makes the writes of stage st, in order: check run, commit status, GitHub deployment,
// deployment status.
func (o *Orchestrator) send(ctx context.Context, st stage, f facts, out rendition) error {
	w := stageWrites[st]
	writes := []struct {
		what string
		do   func() error
	}{
		{"check run", func() error { return o.writeCheckRun(ctx, w.checkRun, f, out) }},
		{"commit status", func() error {
			if !w.commitStatus || f.d.IsPreview() {
				return nil
			}
			return o.writeStatus(ctx, f, github.CommitStatus{
				State: out.commitState, Context: StatusName(f.p), Description: out.title, TargetURL: o.deploymentURL(*f.d)})
		}},
		{"GitHub deployment", func() error {
			if !w.deployment || f.d.GitHubDeploymentID.Valid {
				return nil
			}
			return o.createDeployment(ctx, w.final, f)
		}},
		{"deployment status", func() error {
			if !f.d.GitHubDeploymentID.Valid {
				return nil
			}
			return o.writeDeploymentStatus(ctx, f, github.DeploymentStatus{
				State: out.deployState, Description: out.title, LogURL: o.deploymentURL(*f.d), AutoInactive: out.autoInactive,
				EnvironmentURL: environmentURL(f, out.deployState)})
		}},
	}
	for _, wr := range writes {
		if err := wr.do(); err != nil {
			if w.final {
				return err
			}
			o.log.Warn("report deployment to GitHub", "stage", st, "write", wr.what, "deployment", f.d.ID, "err", err)
		}
	}
	return nil
}

// writeCheckRun creates, updates or completes the deployment's check run.
func (o *Orchestrator) writeCheckRun(ctx context.Context, how checkRunWrite, f facts, out rendition) error {
	repo, d := f.p.RepoFullName, f.d
	if !d.CheckRunID.Valid {
		if how == updateCheckRun {
			return nil
		}
		id, err := o.createCheckRun(ctx, how == completeCheckRun, f, out)
		if err != nil {
			return err
		}
		d.CheckRunID.Int64, d.CheckRunID.Valid = id, true
		if err := o.opt.Store.SetDeploymentGitHubIDs(ctx, d.ID, &id, nil); err != nil {
			return err
		}
	}
	switch how {
	case updateCheckRun:
		return f.gh.UpdateCheckRun(ctx, repo, d.CheckRunID.Int64, github.CheckRunUpdate{Status: out.checkStatus, Title: out.title, Summary: out.summary})
	case completeCheckRun:
		return f.gh.CompleteCheckRun(ctx, repo, d.CheckRunID.Int64, github.CheckRunResult{
			Conclusion: out.conclusion, Title: out.title, Summary: out.summary, Text: out.text, Annotations: out.annotations, Actions: out.actions,
		})
	default:
		return nil
	}
}

// createCheckRun creates the deployment's check run. A final report first looks for one: an
// earlier create GitHub carried out may have gone unrecorded (answered 502, and the lookup
// that would have told failed too).
func (o *Orchestrator) createCheckRun(ctx context.Context, lookFirst bool, f facts, out rendition) (int64, error) {
	repo, d := f.p.RepoFullName, f.d
	if lookFirst {
		id, err := f.gh.FindCheckRun(ctx, repo, d.SHA, checkNameOf(f), jobID(d.ID))
		if err == nil || !errors.Is(err, github.ErrNotFound) {
			return id, err
		}
	}
	return f.gh.CreateCheckRun(ctx, repo, github.NewCheckRun{
		Name: checkNameOf(f), HeadSHA: d.SHA, ExternalID: jobID(d.ID), DetailsURL: o.deploymentURL(*d),
		Status: out.checkStatus, Title: out.title, Summary: out.summary,
	})
}

// writeStatus sets the commit status st, unless a retried report finds it set already.
func (o *Orchestrator) writeStatus(ctx context.Context, f facts, st github.CommitStatus) error {
	if f.retry {
		if posted, err := f.gh.StatusPosted(ctx, f.p.RepoFullName, f.d.SHA, st); err != nil || posted {
			return err
		}
	}
	return f.gh.CreateStatus(ctx, f.p.RepoFullName, f.d.SHA, st)
}

// writeDeploymentStatus adds st to the GitHub deployment, unless a retried report finds it there.
func (o *Orchestrator) writeDeploymentStatus(ctx context.Context, f facts, st github.DeploymentStatus) error {
	repo, id := f.p.RepoFullName, f.d.GitHubDeploymentID.Int64
	if f.retry {
		if posted, err := f.gh.DeploymentStatusPosted(ctx, repo, id, st); err != nil || posted {
			return err
		}
	}
	return f.gh.CreateDeploymentStatus(ctx, repo, id, st)
}

// createDeployment creates the GitHub deployment of the project's environment; the payload
// names the Stagely deployment, which is how GitHub's list tells it apart. A final report
// first looks for one an earlier attempt may have created unrecorded.
func (o *Orchestrator) createDeployment(ctx context.Context, lookFirst bool, f facts) error {
	d := f.d
	nd := github.NewDeployment{
		Ref: d.SHA, Environment: environmentOf(f.p, *d), Transient: d.IsPreview(), Description: fmt.Sprintf("Stagely deployment #%d (%s)", d.ID, d.Trigger),
		Payload: map[string]any{"stagely_deployment": d.ID},
	}
	var id int64
	err := github.ErrNotFound
	if lookFirst {
		id, err = f.gh.FindDeployment(ctx, f.p.RepoFullName, nd)
	}
	if errors.Is(err, github.ErrNotFound) {
		id, err = f.gh.CreateDeployment(ctx, f.p.RepoFullName, nd)
	}
	if err != nil {
		return err
	}
	d.GitHubDeploymentID.Int64, d.GitHubDeploymentID.Valid = id, true
	return o.opt.Store.SetDeploymentGitHubIDs(ctx, d.ID, nil, &id)
}

// reportFinal reports a finished deployment and records that GitHub has been told, unless
// the report failed in a way a retry can fix: then reported_status stays behind its status
// and the sweeper retries it after a back-off (retryReports).
func (o *Orchestrator) reportFinal(ctx context.Context, p store.Project, d store.Deployment, problems []stagelyyaml.Problem) {
	err := o.sendFinal(ctx, p, d, problems)
	if err == nil {
		return
	}
	sctx, cancel := storeContext(ctx)
	defer cancel()
	attempts, cerr := o.opt.Store.CountReportAttempt(sctx, d.ID)
	if cerr != nil {
		// next_report_at stays NULL: the sweeper takes the report over once it has settled.
		o.log.Error("count an attempt at a GitHub report", "deployment", d.ID, "err", cerr)
		return
	}
	o.scheduleReport(ctx, d, attempts, err)
}

// sendFinal sends d's final report and records that GitHub has been told. It returns the
// report's error when a retry can fix it; one that no retry can fix is logged and counts as told.
func (o *Orchestrator) sendFinal(ctx context.Context, p store.Project, d store.Deployment, problems []stagelyyaml.Problem) error {
	st := stageFinished
	if d.Status == store.DeploymentSuperseded {
		st = stageSuperseded
	}
	if err := o.report(ctx, st, p, &d, problems); err != nil {
		if !permanent(err) {
			return err
		}
		// Retrying cannot help (the App was uninstalled, the repository is gone, GitHub refuses
		// the request): the deployment's own record stays, and the retry queue stays short.
		o.log.Error("report finished deployment to GitHub; giving up", "deployment", d.ID, "status", d.Status, "err", err)
	}
	// The report may have used up ctx's deadline: what GitHub was told is recorded all the same.
	sctx, cancel := storeContext(ctx)
	defer cancel()
	if err := o.opt.Store.SetReportedStatus(sctx, d.ID, d.Status); err != nil {
		o.log.Error("record GitHub report", "deployment", d.ID, "err", err)
	}
	return nil
}

// scheduleReport sets when d's final report, which failed (err) at its attempts-th attempt,
// is tried again.
func (o *Orchestrator) scheduleReport(ctx context.Context, d store.Deployment, attempts int, err error) {
	wait := o.reportBackoff(attempts)
	o.log.Warn("report finished deployment to GitHub; will retry", "deployment", d.ID, "status", d.Status,
		"attempt", attempts, "retry_in", wait, "err", err)
	sctx, cancel := storeContext(ctx)
	defer cancel()
	if serr := o.opt.Store.ScheduleReport(sctx, d.ID, o.opt.Now().Add(wait)); serr != nil {
		// The claim's lease runs out instead, and the sweeper tries again then.
		o.log.Error("schedule a GitHub report", "deployment", d.ID, "err", serr)
	}
}

// storeTimeout bounds the store writes that record how a report went.
const storeTimeout = 10 * time.Second

// storeContext is a context for recording how a GitHub call went: ctx's values without its
// deadline, which the call may have used up, and with a deadline of its own.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}

// conclusion maps a deployment status to GitHub's check run conclusion, commit status state
// and deployment status state.
func conclusion(status string) (check, commit, deployment string) {
	switch status {
	case store.DeploymentSuccess:
		return "success", "success", "success"
	case store.DeploymentTimedOut:
		return "timed_out", "failure", "failure"
	case store.DeploymentCancelled:
		return "cancelled", "error", "inactive"
	case store.DeploymentSuperseded:
		return "skipped", "error", "inactive"
	default: // failure, rolled_back
		return "failure", "failure", "failure"
	}
}

var errInstallationInactive = errors.New("the GitHub App installation is suspended or deleted")

// githubFor is the GitHub API of the project's installation; a deleted installation has none.
func (o *Orchestrator) githubFor(ctx context.Context, p store.Project) (GitHub, error) {
	in, err := o.opt.Store.InstallationByID(ctx, p.InstallationID)
	if err != nil {
		return nil, err
	}
	if in.DeletedAt.Valid {
		return nil, errInstallationInactive
	}
	return o.opt.GitHub(in.GitHubID), nil
}

// permanent tells a report failure that no retry can fix from a passing one.
func permanent(err error) bool {
	if errors.Is(err, errInstallationInactive) || errors.Is(err, github.ErrNotFound) {
		return true
	}
	var apiErr *github.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 &&
		apiErr.StatusCode != http.StatusTooManyRequests && !errors.Is(err, github.ErrRateLimited)
}

// checkNameOf is the check run a deployment reports on: `Stagely / preview` for a preview's.
func checkNameOf(f facts) string {
	if f.d.IsPreview() {
		return CheckName(CheckPreview, f.p)
	}
	return CheckName(CheckDeploy, f.p)
}

// environmentOf is the GitHub environment of d: the project's name for production, and
// preview/pr-<n> for a preview (with the project's name for a project in a root directory,
// so that two projects of one repository never share a preview environment).
func environmentOf(p store.Project, d store.Deployment) string {
	if !d.IsPreview() {
		return p.Name
	}
	if p.RootDirectory == "" {
		return d.Environment
	}
	return d.Environment + " (" + p.Name + ")"
}

// environmentURL is where GitHub's "View deployment" goes: a live preview's first URL.
func environmentURL(f facts, state string) string {
	if state != "success" || len(f.urls) == 0 {
		return ""
	}
	return f.urls[slices.Min(slices.Collect(maps.Keys(f.urls)))]
}

// urlList is the markdown list of a preview's URLs, "" when it has none.
func urlList(urls map[string]string) string {
	if len(urls) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("**Preview URLs**\n\n")
	for _, name := range slices.Sorted(maps.Keys(urls)) {
		fmt.Fprintf(&b, "- %s: %s\n", name, urls[name])
	}
	return b.String() + "\n"
}
