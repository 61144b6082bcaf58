package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Check-run values we send; GitHub's enums (only GitHub Actions may set waiting/pending/requested).
var (
	createStatuses = []string{"queued", "in_progress"}
	conclusions    = []string{"success", "failure", "cancelled", "skipped", "timed_out", "neutral", "action_required"}
	levels         = []string{"notice", "warning", "failure"}
)

// NewCheckRun describes a check run to create.
type NewCheckRun struct {
	// Name is the check's name, e.g. "Stagely / deploy".
	Name string
	// HeadSHA is the commit the check is about.
	HeadSHA string
	// ExternalID is our deployment id, echoed back in check_run webhooks.
	ExternalID string
	// DetailsURL links to the deployment's page on Stagely.
	DetailsURL string
	// Status is "queued" or "in_progress"; empty means queued.
	Status string
	// StartedAt is when the work began; zero leaves it to GitHub.
	StartedAt time.Time
	// Title and Summary are the first output; both optional.
	Title, Summary string
	// Actions are the run's buttons from the start (at most 3), like DeployPreviewAction.
	Actions []Action
}

// CheckRunUpdate changes a check run that is still running; empty fields are left as they are.
type CheckRunUpdate struct {
	// Status is "queued", "in_progress" or empty.
	Status string
	// DetailsURL replaces the link when set.
	DetailsURL string
	// Title and Summary replace the output when either is set.
	Title, Summary string
	// Text replaces the output's text when set (sent only with a title or summary).
	Text string
	// Actions replaces the run's buttons when not nil; an empty, non-nil slice removes them.
	Actions []Action
}

// CheckRunResult is the final state of a check run.
type CheckRunResult struct {
	// Conclusion is one of success, failure, cancelled, skipped, timed_out, neutral, action_required.
	Conclusion string
	// Title, Summary (markdown) and Text (markdown; our log tail) are cut to GitHub's limits.
	Title, Summary, Text string
	// Annotations are sent in batches of at most 50, all before the conclusion.
	Annotations []Annotation
	// Actions are the run's buttons (at most 3); a label, description or identifier over GitHub's
	// limits is our own bug and refused before anything is sent.
	Actions []Action
}

// Annotation marks a line range of a file in the check run.
type Annotation struct {
	// Path is relative to the repository root.
	Path string
	// StartLine and EndLine are 1-based; EndLine 0 means StartLine.
	StartLine, EndLine int
	// StartColumn and EndColumn are sent only when the annotation is on one line, as GitHub requires.
	StartColumn, EndColumn int
	// Level is notice, warning or failure.
	Level string
	// Title is cut to 255 characters.
	Title string
	// Message is required and cut to 64 KB.
	Message string
}

// DeployPreviewIdentifier is the identifier of DeployPreviewAction, which a check_run
// requested_action webhook carries when the button is pressed.
const DeployPreviewIdentifier = "deploy_preview"

// DeployPreviewAction is the "Deploy preview" button of a pull request that Stagely does not
// deploy on its own (from a fork, or by an author without write access).
var DeployPreviewAction = Action{Label: "Deploy preview", Description: "Deploy this pull request's head", Identifier: DeployPreviewIdentifier}

// Action is a button on the check run; a click arrives as a check_run requested_action webhook.
type Action struct {
	// Label is the button text (at most 20 characters).
	Label string
	// Description explains the button (at most 40 characters).
	Description string
	// Identifier comes back in the webhook (at most 20 characters).
	Identifier string
}

// The JSON GitHub takes, written out here rather than taken from go-github, whose update options
// always send "name" (empty would rename the run) and cannot say "status unchanged".
type checkRunBody struct {
	Name        string          `json:"name,omitempty"`
	HeadSHA     string          `json:"head_sha,omitempty"`
	DetailsURL  string          `json:"details_url,omitempty"`
	ExternalID  string          `json:"external_id,omitempty"`
	Status      string          `json:"status,omitempty"`
	StartedAt   string          `json:"started_at,omitempty"`
	Conclusion  string          `json:"conclusion,omitempty"`
	CompletedAt string          `json:"completed_at,omitempty"`
	Output      *checkRunOutput `json:"output,omitempty"`
	// Actions is sent when not nil, so an empty list removes the buttons.
	Actions *[]checkRunAction `json:"actions,omitempty"`
}

type checkRunOutput struct {
	Title       string               `json:"title"`
	Summary     string               `json:"summary"`
	Text        string               `json:"text,omitempty"`
	Annotations []checkRunAnnotation `json:"annotations,omitempty"`
}

type checkRunAnnotation struct {
	Path            string `json:"path"`
	StartLine       int    `json:"start_line"`
	EndLine         int    `json:"end_line"`
	StartColumn     int    `json:"start_column,omitempty"`
	EndColumn       int    `json:"end_column,omitempty"`
	AnnotationLevel string `json:"annotation_level"`
	Message         string `json:"message"`
	Title           string `json:"title,omitempty"`
}

type checkRunAction struct {
	Label       string `json:"label"`
	Description string `json:"description"`
	Identifier  string `json:"identifier"`
}

type checkRunReply struct {
	ID int64 `json:"id"`
}

// CreateCheckRun creates a check run and returns its id.
func (in *Installation) CreateCheckRun(ctx context.Context, repo string, run NewCheckRun) (int64, error) {
	status := run.Status
	if status == "" {
		status = "queued"
	}
	if !slices.Contains(createStatuses, status) {
		return 0, fmt.Errorf("create check run %q: status %q: want queued or in_progress", run.Name, run.Status)
	}
	if run.Name == "" || run.HeadSHA == "" {
		return 0, errors.New("create check run: name and head sha are required")
	}
	actions, err := sentActions(run.Actions)
	if err != nil {
		return 0, fmt.Errorf("create check run %q: %w", run.Name, err)
	}
	body := checkRunBody{Name: run.Name, HeadSHA: run.HeadSHA, DetailsURL: run.DetailsURL, ExternalID: run.ExternalID, Status: status, Actions: actions}
	if !run.StartedAt.IsZero() {
		body.StartedAt = run.StartedAt.UTC().Format(time.RFC3339)
	}
	if run.Title != "" || run.Summary != "" {
		body.Output = output(run.Title, run.Summary, "", run.Name)
	}
	// The external id finds a run GitHub created although it answered 502; without one a
	// failed create is not sent again.
	id, err := writeOnce(ctx, in.conn, "create check run", func() (int64, error) {
		var reply checkRunReply
		err := in.send(ctx, http.MethodPost, repo, "check-runs", body, &reply)
		return reply.ID, err
	}, func() (int64, bool, error) {
		id, err := in.FindCheckRun(ctx, repo, run.HeadSHA, run.Name, run.ExternalID)
		if errors.Is(err, ErrNotFound) {
			return 0, false, nil
		}
		return id, err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("create check run %q on %s: %w", run.Name, run.HeadSHA, err)
	}
	return id, nil
}

// UpdateCheckRun changes a running check run (its status, link or interim output).
func (in *Installation) UpdateCheckRun(ctx context.Context, repo string, id int64, up CheckRunUpdate) error {
	if up.Status != "" && !slices.Contains(createStatuses, up.Status) {
		return fmt.Errorf("update check run %d: status %q: want queued or in_progress (CompleteCheckRun completes)", id, up.Status)
	}
	actions, err := sentActions(up.Actions)
	if err != nil {
		return fmt.Errorf("update check run %d: %w", id, err)
	}
	body := checkRunBody{Status: up.Status, DetailsURL: up.DetailsURL, Actions: actions}
	if up.Title != "" || up.Summary != "" {
		body.Output = output(up.Title, up.Summary, up.Text, "Stagely")
	}
	// The update replaces what it sets, so sending it again is harmless.
	err = writeOnceNoAnswer(ctx, in.conn, "update check run", func() error {
		return in.send(ctx, http.MethodPatch, repo, fmt.Sprintf("check-runs/%d", id), body, nil)
	}, func() (bool, error) { return false, nil })
	if err != nil {
		return fmt.Errorf("update check run %d: %w", id, err)
	}
	return nil
}

// CompleteCheckRun gives a check run its conclusion and final output. Everything is checked and cut
// to GitHub's limits before the first request. GitHub appends annotations across updates and takes
// at most 50 per request, so batches before the last go out with the status unchanged, and the last
// batch travels with the conclusion: the run never shows "completed" with only part of its annotations.
// The run's annotations are taken to be the ones this call sends: those GitHub already counts on
// the run (an earlier attempt's) are not sent again, so it can be called again after a failure.
func (in *Installation) CompleteCheckRun(ctx context.Context, repo string, id int64, res CheckRunResult) error {
	if !slices.Contains(conclusions, res.Conclusion) {
		return fmt.Errorf("complete check run %d: conclusion %q: want one of %v", id, res.Conclusion, conclusions)
	}
	actions, err := checkActions(res.Actions)
	if err != nil {
		return fmt.Errorf("complete check run %d: %w", id, err)
	}
	anns, err := checkAnnotations(res.Annotations)
	if err != nil {
		return fmt.Errorf("complete check run %d: %w", id, err)
	}
	err = writeOnceNoAnswer(ctx, in.conn, "complete check run", func() error {
		return in.completeCheckRun(ctx, repo, id, res, actions, anns)
	}, func() (bool, error) {
		st, err := in.checkRunState(ctx, repo, id)
		return err == nil && st.status == "completed" && st.conclusion == res.Conclusion && st.annotations >= len(anns), err
	})
	if err != nil {
		return fmt.Errorf("complete check run %d: %w", id, err)
	}
	return nil
}

// completeCheckRun sends the annotations GitHub does not count on the run yet, then the conclusion.
func (in *Installation) completeCheckRun(ctx context.Context, repo string, id int64, res CheckRunResult, actions []checkRunAction, anns []checkRunAnnotation) error {
	if len(anns) > 0 {
		st, err := in.checkRunState(ctx, repo, id)
		if err != nil {
			return err
		}
		anns = anns[min(st.annotations, len(anns)):]
	}
	batches := chunk(anns, MaxAnnotationsPerRequest)
	title := res.Title
	if title == "" {
		title = res.Conclusion
	}
	for i, batch := range batches[:len(batches)-1] {
		out := output(title, res.Summary, "", title)
		out.Annotations = batch
		if err := in.send(ctx, http.MethodPatch, repo, fmt.Sprintf("check-runs/%d", id), checkRunBody{Output: out}, nil); err != nil {
			return fmt.Errorf("annotations batch %d of %d: %w", i+1, len(batches), err)
		}
	}
	out := output(title, res.Summary, res.Text, title)
	out.Annotations = batches[len(batches)-1]
	body := checkRunBody{
		Status:      "completed",
		Conclusion:  res.Conclusion,
		CompletedAt: in.conn.now().UTC().Format(time.RFC3339),
		Output:      out,
	}
	if len(actions) > 0 {
		body.Actions = &actions
	}
	return in.send(ctx, http.MethodPatch, repo, fmt.Sprintf("check-runs/%d", id), body, nil)
}

// output builds a check run output within GitHub's limits. GitHub requires a title and a summary
// whenever output is sent, so a missing one borrows from the other or from fallback.
func output(title, summary, text, fallback string) *checkRunOutput {
	if title == "" {
		title = fallback
	}
	if summary == "" {
		summary = title
	}
	return &checkRunOutput{
		Title:   truncateHead(title, MaxOutputChars),
		Summary: truncateHead(summary, MaxOutputChars),
		Text:    truncateTail(text, MaxOutputChars),
	}
}

// sentActions checks the buttons of a create or update: nil stays nil (not sent), anything
// else is sent, an empty list included.
func sentActions(actions []Action) (*[]checkRunAction, error) {
	if actions == nil {
		return nil, nil
	}
	out, err := checkActions(actions)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func checkActions(actions []Action) ([]checkRunAction, error) {
	if len(actions) > maxActions {
		return nil, fmt.Errorf("%d actions: GitHub accepts at most %d", len(actions), maxActions)
	}
	out := make([]checkRunAction, 0, len(actions))
	for _, a := range actions {
		for _, f := range []struct {
			name, v string
			max     int
		}{{"label", a.Label, maxActionLabel}, {"description", a.Description, maxActionDesc}, {"identifier", a.Identifier, maxActionID}} {
			if n := textLen(f.v); n == 0 || n > f.max {
				return nil, fmt.Errorf("action %q: %s is %d characters, want 1 to %d", a.Identifier, f.name, n, f.max)
			}
		}
		out = append(out, checkRunAction(a))
	}
	return out, nil
}

func checkAnnotations(anns []Annotation) ([]checkRunAnnotation, error) {
	out := make([]checkRunAnnotation, 0, len(anns))
	for i, a := range anns {
		end := a.EndLine
		if end == 0 {
			end = a.StartLine
		}
		switch {
		case a.Path == "":
			return nil, fmt.Errorf("annotation %d: path is required", i)
		case a.StartLine < 1 || end < a.StartLine:
			return nil, fmt.Errorf("annotation %d (%s): lines %d-%d: want 1 <= start <= end", i, a.Path, a.StartLine, end)
		case !slices.Contains(levels, a.Level):
			return nil, fmt.Errorf("annotation %d (%s): level %q: want notice, warning or failure", i, a.Path, a.Level)
		case a.Message == "":
			return nil, fmt.Errorf("annotation %d (%s): message is required", i, a.Path)
		}
		ca := checkRunAnnotation{
			Path: a.Path, StartLine: a.StartLine, EndLine: end, AnnotationLevel: a.Level,
			Message: truncateBytes(a.Message, maxAnnotationBytes),
			Title:   truncateHead(a.Title, maxAnnotationTitle),
		}
		// GitHub supports columns "on the same line" only; elsewhere they would be a 422.
		if end == a.StartLine && a.StartColumn > 0 {
			ca.StartColumn = a.StartColumn
			ca.EndColumn = max(a.EndColumn, a.StartColumn)
		}
		out = append(out, ca)
	}
	return out, nil
}

// chunk splits s into runs of at most n; an empty s gives one empty run, so there is always a last request.
func chunk[T any](s []T, n int) [][]T {
	out := [][]T{nil}
	for len(s) > n {
		out[len(out)-1] = s[:n]
		out = append(out, nil)
		s = s[n:]
	}
	out[len(out)-1] = s
	return out
}

// send makes one JSON call on a repository endpoint with go-github's plumbing (base URL, error
// parsing, rate-limit bookkeeping) and our own body types.
func (in *Installation) send(ctx context.Context, method, repo, endpoint string, body, reply any) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	u := fmt.Sprintf("repos/%s/%s/%s", url.PathEscape(owner), url.PathEscape(name), endpoint)
	_, client, err := in.clients(ctx)
	if err != nil {
		return err
	}
	req, err := client.NewRequest(method, u, body)
	if err != nil {
		return err
	}
	if _, err := client.Do(ctx, req, reply); err != nil {
		return apiError(err)
	}
	return nil
}
