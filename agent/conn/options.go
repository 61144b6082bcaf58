// Package conn is the agent's runtime: it dials the server, keeps the connection alive
// and redials with backoff, and runs the jobs the server sends through a Runner, one
// at a time, delivering every result exactly once through the local journal.
package conn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
)

// Runner runs one deploy and reports its outcome; *deployer.Deployer is the real one.
type Runner interface {
	Deploy(ctx context.Context, job protocol.Deploy, ev deployer.Events) protocol.JobResult
}

// Recoverer is a Runner that can bring a project to a known state after the agent was
// killed in the middle of one of its jobs; *deployer.Deployer is one. phase is the last
// phase the job reached. The result it returns is the interrupted job's result.
type Recoverer interface {
	Recover(ctx context.Context, job protocol.Deploy, phase string, ev deployer.Events) protocol.JobResult
}

// Options configures a Client. Zero durations and sizes take the defaults named on each field.
type Options struct {
	// ServerURL is the control plane's base URL, http:// or https://; the agent dials
	// <ServerURL>/agent/ws on the matching ws:// or wss:// scheme.
	ServerURL string
	// Token is the agent's bearer token; it is sent in the handshake and never logged.
	Token string
	// Runner runs deploys.
	Runner Runner
	// Journal keeps results until the server acknowledges them.
	Journal *journal.Journal
	// AgentVersion, Hostname go into HELLO.
	AgentVersion string
	// Hostname is the machine's name as reported in HELLO.
	Hostname string
	// Versions reports the Docker engine and Compose versions for HELLO; nil reports none.
	// It is called once per connection, so an upgraded engine shows up on the next redial.
	Versions func(ctx context.Context) (docker, compose string)
	// Logger receives the agent's own logs; nil discards them.
	Logger *slog.Logger
	// HTTPClient performs the WebSocket handshake; nil uses a client without a timeout.
	HTTPClient *http.Client
	// Updater applies the server's UPDATE offers (update.go); nil declines them, and HELLO
	// does not list protocol.FeatureSelfUpdate.
	Updater Updater
	// OnAccepted, when set, is called once per connection when the server has accepted it:
	// at the first pong after HELLO. A new build on trial is confirmed then, not when HELLO
	// is written: a server that refuses the connection after HELLO (a duplicate, say) stops
	// reading before answering any ping.
	OnAccepted func()
	// Features are what HELLO lists besides self-update, like protocol.FeaturePreviews.
	Features []string

	// Backoff paces redials after ordinary failures (default 1s doubling to 60s, full jitter).
	Backoff Backoff
	// RefusedBackoff paces redials after the server refused the token or the protocol
	// version (default 4 to 10 minutes): a person has to act, hammering will not help.
	RefusedBackoff Backoff
	// ResetAfter is how long a connection must live for the backoff to start over (default 1m).
	ResetAfter time.Duration
	// Rand draws the jitter in [0, 1) (default math/rand/v2).
	Rand func() float64

	// DialTimeout bounds the handshake (default 30s).
	DialTimeout time.Duration
	// PingInterval is how often the agent pings the server (default 20s).
	PingInterval time.Duration
	// PongTimeout is how long a pong may take before the connection is torn down (default 10s).
	PongTimeout time.Duration
	// WriteTimeout bounds one frame write (default 10s).
	WriteTimeout time.Duration

	// ShutdownGrace is how long a running job may continue after Run's context ends
	// before it is cancelled (default 2m).
	ShutdownGrace time.Duration
	// CancelWait bounds waiting, at shutdown, for a job cancelled after ShutdownGrace to
	// return; the deployer may still be rolling back (default 30s).
	CancelWait time.Duration
	// FlushTimeout bounds waiting, at shutdown, for queued frames and unacknowledged
	// results to reach the server (default 10s).
	FlushTimeout time.Duration

	// MaxQueuedJobs is how many deploys may wait behind the running one (default 4).
	MaxQueuedJobs int
	// MaxQueuedLines bounds log lines waiting for the server (default 10000).
	MaxQueuedLines int
	// MaxQueuedLogBytes bounds the bytes of those lines (default 8 MiB).
	MaxQueuedLogBytes int
	// MaxLineBytes truncates one log line (default 16 KiB), keeping frames far below
	// protocol.MaxFrameBytes.
	MaxLineBytes int
	// RecentResults is how many acknowledged results are remembered, so a DEPLOY the
	// server repeats for a finished job is answered without running it (default 64).
	RecentResults int
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	if o.Backoff == (Backoff{}) {
		o.Backoff = Backoff{Base: time.Second, Max: time.Minute}
	}
	if o.RefusedBackoff == (Backoff{}) {
		o.RefusedBackoff = Backoff{Base: 5 * time.Minute, Max: 10 * time.Minute, Min: 4 * time.Minute}
	}
	def(&o.ResetAfter, time.Minute)
	def(&o.DialTimeout, 30*time.Second)
	def(&o.PingInterval, 20*time.Second)
	def(&o.PongTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.ShutdownGrace, 2*time.Minute)
	def(&o.CancelWait, 30*time.Second)
	def(&o.FlushTimeout, 10*time.Second)
	defInt(&o.MaxQueuedJobs, 4)
	defInt(&o.MaxQueuedLines, 10000)
	defInt(&o.MaxQueuedLogBytes, 8<<20)
	defInt(&o.MaxLineBytes, 16<<10)
	defInt(&o.RecentResults, 64)
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Versions == nil {
		o.Versions = func(context.Context) (string, string) { return "", "" }
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
}

// WebSocketURL turns the server's base URL into the agent endpoint's ws:// or wss:// URL.
func WebSocketURL(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse server URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return "", fmt.Errorf("server URL %q: scheme must be https:// (or http:// for a local test server)", serverURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("server URL %q: no host", serverURL)
	}
	if u.User != nil {
		return "", errors.New("server URL: must not carry a user or password; the token authenticates the agent")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("server URL %q: must not have a query or fragment", serverURL)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/agent/ws"
	u.RawPath = ""
	return u.String(), nil
}
