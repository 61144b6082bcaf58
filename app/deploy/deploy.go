// Package deploy is the control plane's deployment state machine: it turns webhook events
// into deployments, hands them to agents one at a time per project, and reports every state
// to GitHub as a check run, a commit status and a deployment status.
//
// Every state lives in PostgreSQL; the in-memory parts (the hub's connections) are only
// ever consulted, so a restarted server picks up where it stopped: a sweeper re-kicks
// queued deployments, fails the ones whose agent vanished, and retries GitHub reports
// that did not go through.
package deploy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// Names that users see in GitHub.
const (
	CheckDeploy    = "Stagely / deploy"
	CheckValidate  = "Stagely / validate"
	StatusContext  = "stagely/deploy"
	ActionRedeploy = "redeploy"
	ActionRollback = "rollback"
)

// CheckName is the name of a project's check run of kind (CheckDeploy or CheckValidate), and
// StatusName of its commit status: the plain names for a project at the repository root, which
// single-project repositories have always seen, and "Stagely / deploy (api)" for a project in a
// root directory, so that projects sharing a commit never share a check run or a status.
func CheckName(kind string, p store.Project) string {
	if p.RootDirectory == "" {
		return kind
	}
	return kind + " (" + p.Name + ")"
}

// StatusName is the commit-status context of a project's deployments (see CheckName).
func StatusName(p store.Project) string { return CheckName(StatusContext, p) }

// Hub is what the orchestrator needs of the agent connections.
type Hub interface {
	Dispatch(ctx context.Context, agentID int64, job protocol.Deploy) error
	// Cancel asks the agent to stop a job; an offline agent is an error.
	Cancel(agentID int64, jobID string) error
	// Idle reports an agent that is online with no job in flight.
	Idle(agentID int64) bool
}

// GitHub is what the orchestrator needs of one installation's GitHub API.
type GitHub interface {
	ReadFile(ctx context.Context, repo, path, ref string) ([]byte, error)
	RepoReadToken(ctx context.Context, repoID int64) (github.Token, error)
	TarballURL(repo, sha string) string
	// RepoPermission and the branch reads decide whether a deployment may happen at all.
	RepoPermission(ctx context.Context, repo, login string) (github.Permission, error)
	BranchHead(ctx context.Context, repo, branch string) (string, error)
	Compare(ctx context.Context, repo, base, head string) (string, error)
	// ChangedFiles lists the files changed from base to head; complete is false when GitHub
	// cannot list them all.
	ChangedFiles(ctx context.Context, repo, base, head string) (files []string, complete bool, err error)
	CreateCheckRun(ctx context.Context, repo string, cr github.NewCheckRun) (int64, error)
	UpdateCheckRun(ctx context.Context, repo string, id int64, u github.CheckRunUpdate) error
	CompleteCheckRun(ctx context.Context, repo string, id int64, res github.CheckRunResult) error
	CreateStatus(ctx context.Context, repo, sha string, st github.CommitStatus) error
	CreateDeployment(ctx context.Context, repo string, d github.NewDeployment) (int64, error)
	CreateDeploymentStatus(ctx context.Context, repo string, id int64, st github.DeploymentStatus) error
	// The lookups tell a retried report what an earlier attempt already wrote.
	FindCheckRun(ctx context.Context, repo, sha, name, externalID string) (int64, error)
	StatusPosted(ctx context.Context, repo, sha string, st github.CommitStatus) (bool, error)
	FindDeployment(ctx context.Context, repo string, d github.NewDeployment) (int64, error)
	DeploymentStatusPosted(ctx context.Context, repo string, id int64, st github.DeploymentStatus) (bool, error)
	// The preview's pull request comment, kept up to date in place, and who may approve a
	// fork's preview.
	CreateIssueComment(ctx context.Context, repo string, number int, body string) (int64, error)
	UpdateIssueComment(ctx context.Context, repo string, commentID int64, body string) error
	FindIssueComment(ctx context.Context, repo string, number int, marker string) (int64, error)
	HasWriteAccess(ctx context.Context, repo, login string) (bool, error)
	PullRequest(ctx context.Context, repo string, number int) (github.PullRequestState, error)
}

// SecretOpener opens a project's secrets for one job.
type SecretOpener interface {
	ForDeploy(ctx context.Context, projectID int64) ([]protocol.Secret, error)
	// ForPreview opens the secrets of the project's previews: its preview set, and the
	// production secrets marked for previews too.
	ForPreview(ctx context.Context, projectID int64) ([]protocol.Secret, error)
}

// Metrics receives deployment outcomes; nil means none are counted.
type Metrics interface {
	DeploymentFinished(status string, d time.Duration)
}

// Options configures an Orchestrator.
type Options struct {
	Store   *store.Store
	Hub     Hub
	GitHub  func(installationID int64) GitHub
	Secrets SecretOpener
	Metrics Metrics
	// PublicURL is where users open a deployment's page (check run details, status target).
	PublicURL string
	Logger    *slog.Logger
	Now       func() time.Time
	// AgentOfflineWait is how long a deployment waits for its agent to come online.
	AgentOfflineWait time.Duration
	// AgentLostAfter is how long a deployment waits for an agent that vanished mid-job.
	AgentLostAfter time.Duration
	// ResultGrace is how long past a job's own timeout the server waits for its result.
	ResultGrace time.Duration
	// SweepEvery is the period of the sweeper.
	SweepEvery time.Duration
	// ReportTimeout bounds one attempt of the sweeper at a deployment's final report.
	ReportTimeout time.Duration
	// ReportBackoff is the wait before a failed final report is tried again; it doubles with
	// each attempt, up to maxReportBackoff.
	ReportBackoff time.Duration
	// ReportWorkers bounds how many final reports the sweeper retries at once.
	ReportWorkers int
}

// Orchestrator runs deployments.
type Orchestrator struct {
	opt    Options
	log    *slog.Logger
	access *accessCache
	// features is what each agent's HELLO said it supports.
	features agentFeatures
	// slotLimits is the max_previews of the preview heads read so far.
	slotLimits slotLimits
	// reportSlots bounds the sweeper's report retries; reports counts those running.
	reportSlots chan struct{}
	reports     sync.WaitGroup
}

// New builds an Orchestrator, filling defaults.
func New(opt Options) *Orchestrator {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	opt.AgentOfflineWait = cmp.Or(opt.AgentOfflineWait, 10*time.Minute)
	opt.AgentLostAfter = cmp.Or(opt.AgentLostAfter, 5*time.Minute)
	opt.ResultGrace = cmp.Or(opt.ResultGrace, 5*time.Minute)
	opt.SweepEvery = cmp.Or(opt.SweepEvery, 5*time.Second)
	opt.ReportTimeout = cmp.Or(opt.ReportTimeout, 2*time.Minute)
	opt.ReportBackoff = cmp.Or(opt.ReportBackoff, 30*time.Second)
	opt.ReportWorkers = cmp.Or(opt.ReportWorkers, 4)
	opt.PublicURL = strings.TrimRight(opt.PublicURL, "/")
	return &Orchestrator{opt: opt, log: opt.Logger, access: newAccessCache(), reportSlots: make(chan struct{}, opt.ReportWorkers)}
}

// Wait returns once the GitHub reports the sweeper started have ended.
func (o *Orchestrator) Wait() { o.reports.Wait() }

func (o *Orchestrator) deploymentURL(d store.Deployment) string {
	return fmt.Sprintf("%s/projects/%d/deployments/%d", o.opt.PublicURL, d.ProjectID, d.ID)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// jobID is the wire id of a deployment.
func jobID(id int64) string { return fmt.Sprint(id) }
