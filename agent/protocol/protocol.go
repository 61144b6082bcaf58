package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Version is the protocol version an agent announces in HELLO and the server checks.
// Version 2 added LOG_ACK and HELLO's jobs (see the package comment).
const Version = 2

// MinVersion is the oldest version the server still serves: a version 1 agent gets no
// LOG_ACK and lists no jobs in HELLO, and works as it always did.
const MinVersion = 1

// MaxFrameBytes bounds one frame in either direction; both ends set it as their read limit.
const MaxFrameBytes = 4 << 20

// Close reasons sent with the WebSocket close frame, so the peer can log why it was dropped.
const (
	CloseReasonProtocolVersion = "unsupported protocol version"
	CloseReasonUnknownType     = "unknown message type"
	CloseReasonBadFrame        = "malformed frame"
	CloseReasonHelloFirst      = "first frame must be HELLO"
	CloseReasonTokenRevoked    = "agent token revoked"
	CloseReasonReplaced        = "replaced by a newer connection of this agent"
	CloseReasonShutdown        = "server shutting down"
	// CloseReasonDuplicate refuses a connection while another agent holding the same token
	// is connected and answers pings: two servers must not share one agent's credential.
	CloseReasonDuplicate = "another agent is connected with this token"
)

// Message types, server to agent.
const (
	TypeDeploy    = "DEPLOY"
	TypeCancel    = "CANCEL"
	TypeResultAck = "RESULT_ACK"
	// TypeUpdate offers the agent the build the server serves (update.go).
	TypeUpdate = "UPDATE"
)

// Message types, agent to server.
const (
	TypeHello       = "HELLO"
	TypeJobAccepted = "JOB_ACCEPTED"
	TypeJobPhase    = "JOB_PHASE"
	TypeLogChunk    = "LOG_CHUNK"
	TypeJobResult   = "JOB_RESULT"
	// TypeUpdateFailed tells the server an offered update was not applied (update.go).
	TypeUpdateFailed = "UPDATE_FAILED"
)

// ErrUnknownType is returned by Decode for a frame whose type this version does not know.
var ErrUnknownType = errors.New(CloseReasonUnknownType)

// Envelope is one frame on the wire.
type Envelope struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Encode wraps a payload into a frame of the given type.
func Encode(typ string, payload any) ([]byte, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	b, err := json.Marshal(Envelope{Type: typ, Payload: raw})
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", typ, err)
	}
	return b, nil
}

// Decode parses a frame and returns its type and a pointer to the typed payload
// (*Hello, *Deploy, ...). Unknown types yield ErrUnknownType. A frame over MaxFrameBytes
// is refused whatever read limit the transport set.
func Decode(frame []byte) (string, any, error) {
	if len(frame) > MaxFrameBytes {
		return "", nil, fmt.Errorf("%s: %d bytes, over the %d byte limit", CloseReasonBadFrame, len(frame), MaxFrameBytes)
	}
	var env Envelope
	if err := json.Unmarshal(frame, &env); err != nil {
		return "", nil, fmt.Errorf("%s: %w", CloseReasonBadFrame, err)
	}
	var v any
	switch env.Type {
	case TypeDeploy:
		v = &Deploy{}
	case TypeCancel:
		v = &Cancel{}
	case TypeResultAck:
		v = &ResultAck{}
	case TypeLogAck:
		v = &LogAck{}
	case TypeHello:
		v = &Hello{}
	case TypeJobAccepted:
		v = &JobAccepted{}
	case TypeJobPhase:
		v = &JobPhase{}
	case TypeLogChunk:
		v = &LogChunk{}
	case TypeJobResult:
		v = &JobResult{}
	case TypeUpdate:
		v = &Update{}
	case TypeUpdateFailed:
		v = &UpdateFailed{}
	default:
		return env.Type, nil, fmt.Errorf("%w %q", ErrUnknownType, env.Type)
	}
	if len(env.Payload) == 0 || string(env.Payload) == "null" {
		return env.Type, nil, fmt.Errorf("%s: %s without payload", CloseReasonBadFrame, env.Type)
	}
	if err := json.Unmarshal(env.Payload, v); err != nil {
		return env.Type, nil, fmt.Errorf("%s: %s payload: %w", CloseReasonBadFrame, env.Type, err)
	}
	return env.Type, v, nil
}

// Hello is the agent's first frame on every connection.
type Hello struct {
	AgentVersion   string      `json:"agent_version"`
	Protocol       int         `json:"protocol"`
	Hostname       string      `json:"hostname"`
	Docker         string      `json:"docker"`
	Compose        string      `json:"compose"`
	UnackedResults []JobResult `json:"unacked_results"`
	// Jobs lists every job the agent holds without an acknowledged result (version 2). A
	// version 1 agent sends no jobs: nil means "unknown", an empty list "none".
	Jobs []HeldJob `json:"jobs"`
	// Platform is the agent's build, like linux/amd64: the one an update must be for.
	Platform string `json:"platform,omitempty"`
	// Features lists what this agent can do beyond the base protocol (FeatureSelfUpdate).
	Features []string `json:"features,omitempty"`
}

// Deploy asks the agent to deploy one commit of one project.
type Deploy struct {
	JobID    string    `json:"job_id"`
	Project  Project   `json:"project"`
	Repo     string    `json:"repo"` // owner/name
	Ref      string    `json:"ref"`  // refs/heads/main
	SHA      string    `json:"sha"`
	Source   Source    `json:"source"`
	Config   JobConfig `json:"config"`
	Secrets  []Secret  `json:"secrets"`
	Previous *Previous `json:"previous"`
	// Preview is set when the job deploys or tears down a pull request's preview
	// (preview.go); Project.ComposeProject is then the preview's own compose project.
	Preview *Preview `json:"preview,omitempty"`
}

// LogValue logs a job by its identity only: the payload carries secrets and a token.
func (d Deploy) LogValue() slog.Value {
	return slog.GroupValue(slog.String("job_id", d.JobID), slog.String("project", d.Project.Name),
		slog.String("repo", d.Repo), slog.String("sha", d.SHA))
}

// Project names the project a job belongs to.
type Project struct {
	ID string `json:"id"`
	// Name is the human name, used in messages.
	Name string `json:"name"`
	// ComposeProject is the stable `docker compose -p` name; the agent also keys its
	// per-project working directory on it.
	ComposeProject string `json:"compose_project"`
}

// Source tells the agent where to fetch the repository tarball for the SHA.
type Source struct {
	TarballURL string `json:"tarball_url"`
	// Token is a short-lived installation token limited to this repository with contents: read.
	Token string `json:"token"`
}

// LogValue keeps the token out of structured logs.
func (s Source) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tarball_url", s.TarballURL), slog.String("token", redacted))
}

// String keeps the token out of fmt output.
func (s Source) String() string { return fmt.Sprintf("%s token=%s", s.TarballURL, redacted) }

// GoString keeps the token out of %#v output.
func (s Source) GoString() string { return s.String() }

// Strategies for swapping containers.
const (
	StrategyRecreate  = "recreate"
	StrategyStopFirst = "stop-first"
)

// JobConfig is the part of stagely.yaml the agent needs, already validated by the server.
type JobConfig struct {
	// ComposeFile is relative to the repository root.
	ComposeFile string                   `json:"compose_file"`
	Strategy    string                   `json:"strategy"`
	Timeout     Duration                 `json:"timeout"`
	Hooks       Hooks                    `json:"hooks"`
	Services    map[string]ServiceConfig `json:"services,omitempty"`
}

// Hooks are the commands run inside service containers around the swap.
type Hooks struct {
	PreDeploy  []Hook `json:"pre_deploy,omitempty"`
	PostDeploy []Hook `json:"post_deploy,omitempty"`
}

// Hook is one command run as `docker compose run --rm <service> sh -c <command>`.
type Hook struct {
	Service         string `json:"service"`
	Command         string `json:"command"`
	ContinueOnError bool   `json:"continue_on_error"`
}

// ServiceConfig holds per-service deploy settings.
type ServiceConfig struct {
	// HealthCheckGracePeriod is how long the service may take to become healthy; zero means the agent default.
	HealthCheckGracePeriod Duration `json:"health_check_grace_period,omitempty"`
	// Ignore leaves the service alone during updates.
	Ignore bool `json:"ignore,omitempty"`
}

// ScopeGlobal is the secret scope that reaches every service; any other scope names one service.
const ScopeGlobal = "global"

// Secret is one decrypted secret; it lives only in memory on both ends.
type Secret struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Scope string `json:"scope"`
}

const redacted = "[redacted]"

// LogValue keeps the value out of structured logs.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", s.Key), slog.String("scope", s.Scope), slog.String("value", redacted))
}

// String keeps the value out of fmt output.
func (s Secret) String() string { return fmt.Sprintf("%s (%s)=%s", s.Key, s.Scope, redacted) }

// GoString keeps the value out of %#v output.
func (s Secret) GoString() string { return s.String() }

// Previous is the last good deployment, the rollback target; its source is kept by the agent.
type Previous struct {
	SHA    string    `json:"sha"`
	Config JobConfig `json:"config"`
}

// Cancel asks the agent to stop a job.
type Cancel struct {
	JobID string `json:"job_id"`
}

// ResultAck tells the agent the server has stored a job's result.
type ResultAck struct {
	JobID string `json:"job_id"`
}

// JobAccepted tells the server the agent has taken a job.
type JobAccepted struct {
	JobID string `json:"job_id"`
}

// Phases of a job, in order; rolling_back appears only after a failure.
const (
	PhaseFetching    = "fetching"
	PhaseBuilding    = "building"
	PhasePreDeploy   = "pre_deploy"
	PhaseDeploying   = "deploying"
	PhaseVerifying   = "verifying"
	PhasePostDeploy  = "post_deploy"
	PhaseRollingBack = "rolling_back"
)

// PhasePlanned is the JOB_PHASE that carries the job's plan, sent once the agent knows
// what the swap will change and before anything stops. It is not a step of its own.
const PhasePlanned = "planned"

// JobPhase reports progress.
type JobPhase struct {
	JobID string `json:"job_id"`
	Phase string `json:"phase"`
	// Plan is set on the PhasePlanned frame. A server that does not know the field ignores
	// it, so it needs no new protocol version.
	Plan *Plan `json:"plan,omitempty"`
}

// Changes the swap makes to one service, as compose will decide them.
const (
	ChangeCreate    = "create"    // the service has no container yet
	ChangeRecreate  = "recreate"  // its configuration or image changed
	ChangeStart     = "start"     // unchanged, but not running: compose starts it
	ChangeScale     = "scale"     // unchanged, but its number of replicas differs
	ChangeRestart   = "restart"   // unchanged, but restarted: a depends_on entry with restart: true names a recreated service
	ChangeUnchanged = "unchanged" // left running as it is
	ChangeIgnored   = "ignored"   // services.<name>.ignore: left alone
	ChangeRemove    = "remove"    // no longer in the compose file: its containers are removed
)

// Plan names the services of each change, sorted; a service is in exactly one list. A
// server that does not know a list (Restart came after the others) ignores it.
type Plan struct {
	Create    []string `json:"create,omitempty"`
	Recreate  []string `json:"recreate,omitempty"`
	Start     []string `json:"start,omitempty"`
	Scale     []string `json:"scale,omitempty"`
	Restart   []string `json:"restart,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
	Ignored   []string `json:"ignored,omitempty"`
	Remove    []string `json:"remove,omitempty"`
}

// Empty reports whether the swap changes nothing.
func (p Plan) Empty() bool {
	return len(p.Create)+len(p.Recreate)+len(p.Start)+len(p.Scale)+len(p.Restart)+len(p.Remove) == 0
}

// String words the plan in one line: "recreate: api · unchanged: web, worker · new: —".
// New, recreate and unchanged are always named; the other changes when they happen.
func (p Plan) String() string {
	var parts []string
	add := func(label string, names []string, always bool) {
		switch {
		case len(names) > 0:
			parts = append(parts, label+": "+strings.Join(names, ", "))
		case always:
			parts = append(parts, label+": —")
		}
	}
	if p.Empty() {
		parts = append(parts, "nothing to change")
	} else {
		add("recreate", p.Recreate, true)
	}
	add("unchanged", p.Unchanged, !p.Empty())
	if !p.Empty() {
		add("new", p.Create, true)
	}
	add("start", p.Start, false)
	add("scale", p.Scale, false)
	add("restart", p.Restart, false)
	add("remove", p.Remove, false)
	add("ignored", p.Ignored, false)
	return strings.Join(parts, " · ")
}

// PlanList is one of a plan's lists: the change, and the names of the services it applies to.
type PlanList struct {
	Change string
	Names  *[]string
}

// Lists returns the plan's lists by change, in the order String shows them; each points
// into the plan.
func (p *Plan) Lists() []PlanList {
	return []PlanList{
		{ChangeRecreate, &p.Recreate}, {ChangeUnchanged, &p.Unchanged}, {ChangeCreate, &p.Create},
		{ChangeStart, &p.Start}, {ChangeScale, &p.Scale}, {ChangeRestart, &p.Restart}, {ChangeRemove, &p.Remove}, {ChangeIgnored, &p.Ignored},
	}
}

// Streams a log line can come from.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	// StreamSystem carries the agent's own narration ("pulling images", "rolling back to abc123").
	StreamSystem = "system"
)

// LogChunk is one log line of a job; Seq starts at 1 and increases by one per line.
type LogChunk struct {
	JobID  string    `json:"job_id"`
	Seq    int64     `json:"seq"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
	TS     time.Time `json:"ts"`
}

// Result statuses.
const (
	StatusSuccess    = "success"
	StatusFailure    = "failure"
	StatusTimedOut   = "timed_out"
	StatusRolledBack = "rolled_back"
	StatusCancelled  = "cancelled"
)

// JobResult is the final outcome of a job, sent exactly once and journaled until acknowledged.
type JobResult struct {
	JobID      string          `json:"job_id"`
	Status     string          `json:"status"`
	Error      string          `json:"error,omitempty"`
	Services   []ServiceStatus `json:"services"`
	DurationMS int64           `json:"duration_ms"`
}

// ServiceStatus is one compose service as the agent saw it at the end of the job.
type ServiceStatus struct {
	Name        string `json:"name"`
	State       string `json:"state"`            // running, exited, ...
	Health      string `json:"health,omitempty"` // healthy, unhealthy, starting, or empty without a health check
	ContainerID string `json:"container_id,omitempty"`
	// LogTail holds the service's last log lines when it is the reason a deploy failed.
	LogTail []string `json:"log_tail,omitempty"`
	// Change is what the job's plan said the swap would do to the service (a Change*
	// value); empty when the job ended before its plan was known.
	Change string `json:"change,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("300s") on the wire.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string, or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*d = 0
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("duration %q: %w", str, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string like \"300s\" or seconds", s)
	}
	// Converting a float past the int64 range gives an arbitrary value, not an error.
	const limit = float64(1 << 63)
	if ns := secs * float64(time.Second); ns >= limit || ns < -limit {
		return fmt.Errorf("duration %s: more seconds than a duration holds", s)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
