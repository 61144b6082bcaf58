package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// Event is one decoded payload: Push, PullRequest, CheckRun, CheckSuite,
// Installation, InstallationRepositories, Ping or Unhandled.
type Event interface {
	// EventName is the X-GitHub-Event value the payload was decoded as.
	EventName() string
	// sealed keeps the set of events closed, so a type switch over them can be complete.
	sealed()
}

// Repo is the part of a repository object the control plane needs.
type Repo struct {
	// ID is GitHub's stable repository id; it survives renames, FullName does not.
	ID int64
	// FullName is "owner/name".
	FullName string
	// Owner is the owner's login.
	Owner string
	// Name is the repository name without its owner.
	Name string
	// DefaultBranch is empty where the payload omits it (installation repository lists).
	DefaultBranch string
}

// Unhandled is any event, or any payload, that this package does not decode further.
// It is not an error: GitHub sends events an App did not ask for, e.g. after a
// permission change.
type Unhandled struct {
	// Event is the X-GitHub-Event value.
	Event string
	// Action is the payload's "action", empty when it has none.
	Action string
}

// EventName returns the X-GitHub-Event value.
func (u Unhandled) EventName() string { return u.Event }
func (Unhandled) sealed()             {}

// Event names Decode turns into typed values.
const (
	EventPush                     = "push"
	EventPullRequest              = "pull_request"
	EventCheckRun                 = "check_run"
	EventCheckSuite               = "check_suite"
	EventInstallation             = "installation"
	EventInstallationRepositories = "installation_repositories"
	EventPing                     = "ping"
)

// Events returns the event names Decode turns into typed values.
func Events() []string {
	return []string{EventPush, EventPullRequest, EventCheckRun, EventCheckSuite,
		EventInstallation, EventInstallationRepositories, EventPing}
}

// Decode parses body as the payload of event. Events outside the list above become
// Unhandled; a body that is not valid JSON, or lacks the fields its event cannot do
// without, is an ErrPayloadMalformed error.
func Decode(event string, body []byte) (Event, error) {
	switch event {
	case EventPush, EventPullRequest, EventCheckRun, EventCheckSuite,
		EventInstallation, EventInstallationRepositories, EventPing:
	default:
		var p struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("decode %s payload: %w: %w", event, ErrPayloadMalformed, err)
		}
		return Unhandled{Event: event, Action: p.Action}, nil
	}

	parsed, err := github.ParseWebHook(event, body)
	var badTime *time.ParseError
	if errors.As(err, &badTime) {
		if fixed, ok := normaliseTimes(body); ok {
			parsed, err = github.ParseWebHook(event, fixed)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s payload: %w: %w", event, ErrPayloadMalformed, err)
	}
	var ev Event
	switch p := parsed.(type) {
	case *github.PushEvent:
		ev, err = pushFrom(p)
	case *github.PullRequestEvent:
		ev, err = pullRequestFrom(p)
	case *github.CheckRunEvent:
		ev, err = checkRunFrom(p)
	case *github.CheckSuiteEvent:
		ev, err = checkSuiteFrom(p)
	case *github.InstallationEvent:
		ev, err = installationFrom(p)
	case *github.InstallationRepositoriesEvent:
		ev, err = installationRepositoriesFrom(p)
	case *github.PingEvent:
		ev, err = pingFrom(p, body)
	case nil:
		// go-github unmarshals into an interface, so a JSON null leaves no value at all.
		err = fmt.Errorf("%w: payload is null", ErrPayloadMalformed)
	default:
		err = fmt.Errorf("go-github returned %T for a %s payload", parsed, event)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", event, err)
	}
	return ev, nil
}

// missing reports a field an event cannot be acted on without.
func missing(field string) error {
	return fmt.Errorf("%w: %s missing", ErrPayloadMalformed, field)
}

// required is a field an event cannot be acted on without, and whether the payload lacks it.
type required struct {
	field  string
	absent bool
}

// complete returns ev unless the payload lacks one of fields; then it names the first missing.
func complete[E Event](ev E, fields ...required) (E, error) {
	for _, f := range fields {
		if f.absent {
			var none E
			return none, missing(f.field)
		}
	}
	return ev, nil
}

// Origin is where a repository's event came from; the events about a repository embed it.
type Origin struct {
	// Repo is the repository.
	Repo Repo
	// InstallationID is 0 when the payload has no installation (a repository webhook, not the App's).
	InstallationID int64
	// SenderLogin is sender.login, who caused the event.
	SenderLogin string
}

func originFrom(r repoObject, inst *github.Installation, sender *github.User) Origin {
	return Origin{Repo: repoFrom(r), InstallationID: inst.GetID(), SenderLogin: sender.GetLogin()}
}

// repoObject is a payload's repository object: a push's (*github.PushEventRepository) or
// any other event's (*github.Repository). Its getters answer zero values for a nil object.
type repoObject interface {
	GetID() int64
	GetFullName() string
	GetOwner() *github.User
	GetName() string
	GetDefaultBranch() string
}

func repoFrom(r repoObject) Repo {
	return Repo{
		ID:            r.GetID(),
		FullName:      r.GetFullName(),
		Owner:         ownerLogin(r.GetOwner(), r.GetFullName()),
		Name:          r.GetName(),
		DefaultBranch: r.GetDefaultBranch(),
	}
}

func reposFrom(rs []*github.Repository) []Repo {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Repo, 0, len(rs))
	for _, r := range rs {
		if r != nil {
			out = append(out, repoFrom(r))
		}
	}
	return out
}

// ownerLogin falls back to the owner's name (old push payloads) and then to the
// prefix of full_name (installation repository lists carry no owner object).
func ownerLogin(u *github.User, fullName string) string {
	if login := u.GetLogin(); login != "" {
		return login
	}
	if name := u.GetName(); name != "" {
		return name
	}
	owner, _, _ := strings.Cut(fullName, "/")
	return owner
}

// repository requires the payload's repository, by id and full name.
func repository(r Repo) required {
	return required{"repository", r.ID == 0 || r.FullName == ""}
}
