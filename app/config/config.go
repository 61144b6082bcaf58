// Package config reads the server's configuration from its environment (DESIGN.md §7) and
// refuses bad values with messages that say what to set.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stagely/stagely/app/appcreds"
	"github.com/stagely/stagely/app/seal"
)

// Defaults for optional settings.
const (
	DefaultListen       = ":8080"
	DefaultGitHubAPIURL = "https://api.github.com/"
	DefaultGitHubURL    = "https://github.com"
)

// Config is the server's whole configuration.
type Config struct {
	DatabaseURL string
	Listen      string
	PublicURL   *url.URL
	// SecretKey seals new values; PreviousKeys still open old ones until rotate-key has run.
	SecretKey    []byte
	PreviousKeys [][]byte
	GitHubAPIURL *url.URL
	GitHubURL    *url.URL
	// App holds credentials from the environment; empty when /setup stores them instead.
	App appcreds.Credentials
	// AgentDir, when set, is a folder of agent binaries served instead of the embedded ones.
	AgentDir string
	// Deploy bounds; zero means the orchestrator's defaults.
	AgentOfflineWait time.Duration
	AgentLostAfter   time.Duration
	SweepInterval    time.Duration
	// WebhookReadTimeout bounds reading a webhook body; zero means intake's default.
	WebhookReadTimeout time.Duration
	// HTTPIdleTimeout closes a kept-alive connection that sends no next request.
	HTTPIdleTimeout time.Duration
	// Retention bounds what is kept; see docs/configuration.md.
	Retention Retention
	// RecoveryInterval is how often GitHub's webhook delivery log is read for missed
	// deliveries; zero means the recovery loop's default.
	RecoveryInterval time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed (the agent
	// handshake's per-address limits); empty trusts none.
	TrustedProxies []netip.Prefix
	// Agent liveness; zero means the hub's defaults.
	AgentPingInterval time.Duration
	AgentPongTimeout  time.Duration
	// ReportRetryMin is the first wait before a failed GitHub report is tried again.
	ReportRetryMin time.Duration
}

// Retention is how long stored history is kept; a zero duration keeps it for ever.
type Retention struct {
	// Logs is how long a finished deployment keeps its log lines.
	Logs time.Duration
	// KeepLastLogs deployments per project keep their logs whatever their age.
	KeepLastLogs int
	// Deliveries is how long a decided webhook delivery (id, event, decision) is kept.
	Deliveries time.Duration
}

// Retention defaults: GitHub Actions keeps logs 90 days; deliveries are kept well past the 3
// days (7 on GitHub Enterprise Server) in which GitHub lets a delivery be redelivered.
const (
	DefaultLogRetention      = 90 * 24 * time.Hour
	DefaultKeepLastLogs      = 10
	DefaultDeliveryRetention = 30 * 24 * time.Hour
	// MinDeliveryRetention keeps a delivery as long as GitHub may redeliver it: one forgotten
	// sooner would be taken as new, and processed twice.
	MinDeliveryRetention = 7 * 24 * time.Hour
)

// DefaultHTTPIdleTimeout is how long a kept-alive connection may idle; browsers reopen one
// at once, so it can be short (nginx keeps 75 s).
const DefaultHTTPIdleTimeout = 60 * time.Second

// Needs says which settings a command requires.
type Needs struct {
	Database  bool
	SecretKey bool
}

// Load reads the configuration. Every problem is reported at once, one per line.
func Load(getenv func(string) string, needs Needs) (Config, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	cfg := Config{Listen: DefaultListen, HTTPIdleTimeout: DefaultHTTPIdleTimeout, Retention: Retention{
		Logs: DefaultLogRetention, KeepLastLogs: DefaultKeepLastLogs, Deliveries: DefaultDeliveryRetention,
	}}

	cfg.DatabaseURL = strings.TrimSpace(getenv("STAGELY_DATABASE_URL"))
	if needs.Database {
		if cfg.DatabaseURL == "" {
			bad("STAGELY_DATABASE_URL is not set: set it to a PostgreSQL URL like postgres://stagely:PASSWORD@localhost:5432/stagely?sslmode=disable")
		} else if u, err := url.Parse(cfg.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("STAGELY_DATABASE_URL is not a postgres:// URL")
		}
	}

	cfg.AgentDir = strings.TrimSpace(getenv("STAGELY_AGENT_DIR"))
	if v := getenv("STAGELY_LISTEN"); v != "" {
		cfg.Listen = v
	}

	if needs.SecretKey {
		raw := getenv("STAGELY_SECRET_KEY")
		if strings.TrimSpace(raw) == "" {
			bad("STAGELY_SECRET_KEY is not set: it seals secrets at rest; generate one with `openssl rand -base64 32` and keep a backup of it")
		} else if key, err := seal.ParseKey(raw); err != nil {
			bad("STAGELY_SECRET_KEY: %v", err)
		} else {
			cfg.SecretKey = key
		}
		for i, part := range splitList(getenv("STAGELY_SECRET_KEY_PREVIOUS")) {
			key, err := seal.ParseKey(part)
			if err != nil {
				bad("STAGELY_SECRET_KEY_PREVIOUS entry %d: %v", i+1, err)
				continue
			}
			cfg.PreviousKeys = append(cfg.PreviousKeys, key)
		}
	}

	loadURLs(getenv, &cfg, bad)
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{
		{"STAGELY_AGENT_OFFLINE_WAIT", &cfg.AgentOfflineWait},
		{"STAGELY_AGENT_LOST_AFTER", &cfg.AgentLostAfter},
		{"STAGELY_SWEEP_INTERVAL", &cfg.SweepInterval},
		{"STAGELY_WEBHOOK_READ_TIMEOUT", &cfg.WebhookReadTimeout},
		{"STAGELY_HTTP_IDLE_TIMEOUT", &cfg.HTTPIdleTimeout},
		{"STAGELY_WEBHOOK_RECOVERY_INTERVAL", &cfg.RecoveryInterval},
		{"STAGELY_AGENT_PING_INTERVAL", &cfg.AgentPingInterval},
		{"STAGELY_AGENT_PONG_TIMEOUT", &cfg.AgentPongTimeout},
		{"STAGELY_REPORT_RETRY_MIN", &cfg.ReportRetryMin},
	} {
		if v := getenv(d.env); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur <= 0 {
				bad("%s %q is not a positive duration like 10m or 30s", d.env, v)
				continue
			}
			*d.dst = dur
		}
	}

	cfg.TrustedProxies = loadTrustedProxies(getenv("STAGELY_TRUSTED_PROXIES"), bad)
	loadRetention(getenv, &cfg.Retention, bad)
	cfg.App, problems = loadApp(getenv, problems)
	if len(problems) > 0 {
		return Config{}, errors.New("configuration:\n  " + strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// loadRetention reads the retention settings: durations in days ("90d") or Go's units ("72h"),
// 0 for for ever.
func loadRetention(getenv func(string) string, r *Retention, bad func(format string, args ...any)) {
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{
		{"STAGELY_LOG_RETENTION", &r.Logs},
		{"STAGELY_DELIVERY_RETENTION", &r.Deliveries},
	} {
		v := strings.TrimSpace(getenv(d.env))
		if v == "" {
			continue
		}
		dur, err := parseRetention(v)
		if err != nil {
			bad("%s %q is not a number of days like 90d, a duration like 72h, or 0 for for ever", d.env, v)
			continue
		}
		*d.dst = dur
	}
	if r.Deliveries > 0 && r.Deliveries < MinDeliveryRetention {
		bad("STAGELY_DELIVERY_RETENTION is %s, want at least 7d: GitHub may redeliver a delivery for up to 7 days, and one Stagely had forgotten would be processed again", r.Deliveries)
	}
	if v := strings.TrimSpace(getenv("STAGELY_LOG_KEEP_LAST")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("STAGELY_LOG_KEEP_LAST %q is not a number of deployments (0 or more)", v)
		} else {
			r.KeepLastLogs = n
		}
	}
}

func parseRetention(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if v == "0" {
		return 0, nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return dur, nil
}

// loadURLs reads the public URL (default: localhost on the listen port) and GitHub's two bases.
func loadURLs(getenv func(string) string, cfg *Config, bad func(format string, args ...any)) {
	publicURL := getenv("STAGELY_PUBLIC_URL")
	if publicURL == "" {
		publicURL = "http://localhost" + listenPort(cfg.Listen)
	}
	if u, err := parseHTTPURL(publicURL); err != nil {
		bad("STAGELY_PUBLIC_URL: %v", err)
	} else {
		cfg.PublicURL = u
	}
	for _, s := range []struct {
		env, def string
		dst      **url.URL
	}{
		{"STAGELY_GITHUB_API_URL", DefaultGitHubAPIURL, &cfg.GitHubAPIURL},
		{"STAGELY_GITHUB_URL", DefaultGitHubURL, &cfg.GitHubURL},
	} {
		v := getenv(s.env)
		if v == "" {
			v = s.def
		}
		u, err := parseHTTPURL(v)
		if err != nil {
			bad("%s: %v", s.env, err)
			continue
		}
		*s.dst = u
	}
}

func loadApp(getenv func(string) string, problems []string) (appcreds.Credentials, []string) {
	var app appcreds.Credentials
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if v := getenv("STAGELY_GITHUB_APP_ID"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			bad("STAGELY_GITHUB_APP_ID %q is not a number: copy the App ID from the App's settings page", v)
		} else {
			app.AppID = id
		}
	}
	pemText := getenv("STAGELY_GITHUB_APP_PRIVATE_KEY")
	if file := getenv("STAGELY_GITHUB_APP_PRIVATE_KEY_FILE"); file != "" {
		if pemText != "" {
			bad("set STAGELY_GITHUB_APP_PRIVATE_KEY or STAGELY_GITHUB_APP_PRIVATE_KEY_FILE, not both")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			bad("STAGELY_GITHUB_APP_PRIVATE_KEY_FILE: %v", err)
		}
		pemText = string(b)
	}
	if pemText != "" {
		if err := appcreds.CheckPrivateKey([]byte(pemText)); err != nil {
			bad("GitHub App private key: %v", err)
		}
		app.PrivateKeyPEM = []byte(pemText)
	}
	app.WebhookSecret = getenv("STAGELY_GITHUB_WEBHOOK_SECRET")
	app.ClientID = getenv("STAGELY_GITHUB_CLIENT_ID")
	app.ClientSecret = getenv("STAGELY_GITHUB_CLIENT_SECRET")

	set := map[string]bool{
		"STAGELY_GITHUB_APP_ID":          app.AppID != 0,
		"STAGELY_GITHUB_APP_PRIVATE_KEY": len(app.PrivateKeyPEM) > 0,
		"STAGELY_GITHUB_WEBHOOK_SECRET":  app.WebhookSecret != "",
	}
	anySet := false
	for _, ok := range set {
		anySet = anySet || ok
	}
	if anySet {
		for _, name := range []string{"STAGELY_GITHUB_APP_ID", "STAGELY_GITHUB_APP_PRIVATE_KEY", "STAGELY_GITHUB_WEBHOOK_SECRET"} {
			if !set[name] {
				bad("%s is not set: an App configured through the environment needs its id, private key and webhook secret (or leave all unset and use /setup)", name)
			}
		}
	}
	return app, problems
}

func parseHTTPURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL with a host", v)
	}
	return u, nil
}

func listenPort(listen string) string {
	if i := strings.LastIndex(listen, ":"); i >= 0 {
		return listen[i:]
	}
	return ""
}

// loadTrustedProxies reads a comma-separated list of CIDRs or single addresses.
func loadTrustedProxies(v string, bad func(format string, args ...any)) []netip.Prefix {
	var out []netip.Prefix
	for _, part := range splitList(v) {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				bad("STAGELY_TRUSTED_PROXIES entry %q is not a CIDR like 172.16.0.0/12 or an address like 10.0.0.5", part)
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
