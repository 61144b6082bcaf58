package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/conn"
)

const (
	defaultConfigPath = "/etc/stagely/config.json"
	defaultDataDir    = "/var/lib/stagely"
	tokenPrefix       = "stg_"
)

// config is the agent's settings after the file and the environment are merged.
type config struct {
	ServerURL     string
	Token         string
	DataDir       string
	ShutdownGrace time.Duration
	LogLevel      slog.Level
	// SelfUpdate applies the server's UPDATE offers (STAGELY_SELF_UPDATE, default on).
	SelfUpdate bool
	// UpdateConfirmWithin is how long a new build has to connect (STAGELY_UPDATE_CONFIRM_WITHIN, default 2m).
	UpdateConfirmWithin time.Duration
	// Previews routes pull request previews through Caddy (previews.go).
	Previews previewConfig
}

// fileConfig is config.json as cloud-init writes it.
type fileConfig struct {
	ServerURL string `json:"server_url"`
	Token     string `json:"token"`
	// BootstrapSHA256 is the SHA-256 of the bootstrap token the agent traded for Token:
	// install.sh run again with that token keeps this file (bootstrap.go).
	BootstrapSHA256 string `json:"bootstrap_sha256,omitempty"`
	// Exchange is the exchange key of a bootstrap exchange under way (bootstrap.go).
	Exchange *pendingExchange `json:"exchange,omitempty"`
}

// loadConfig reads the config file, then lets the environment override it. A missing
// file is fine only at the default path and only when the environment supplies both
// values, as when the agent runs in a container configured by env.
func loadConfig(path string, explicit bool, getenv func(string) string) (config, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return config{}, fmt.Errorf("parse config %s: %w (want {\"server_url\": \"https://...\", \"token\": \"stg_...\"})", path, err)
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		if getenv("STAGELY_SERVER_URL") == "" || getenv("STAGELY_TOKEN") == "" {
			return config{}, fmt.Errorf("no config: %s does not exist and STAGELY_SERVER_URL and STAGELY_TOKEN are not both set", path)
		}
	default:
		return config{}, fmt.Errorf("read config: %w", err)
	}

	c := config{
		ServerURL:     strings.TrimSpace(fc.ServerURL),
		Token:         strings.TrimSpace(fc.Token),
		DataDir:       defaultDataDir,
		ShutdownGrace: 2 * time.Minute,
		LogLevel:      slog.LevelInfo,
		SelfUpdate:    true,
	}
	if v := strings.TrimSpace(getenv("STAGELY_SERVER_URL")); v != "" {
		c.ServerURL = v
	}
	// A bootstrap token in the environment never overrides the long-lived token it was
	// traded for: that one is in the file since the first start.
	if v := strings.TrimSpace(getenv("STAGELY_TOKEN")); v != "" && !(isBootstrap(v) && c.Token != "" && !isBootstrap(c.Token)) {
		c.Token = v
	}
	if v := strings.TrimSpace(getenv("STAGELY_DATA_DIR")); v != "" {
		c.DataDir = v
	}
	if v := strings.TrimSpace(getenv("STAGELY_SHUTDOWN_GRACE")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return config{}, fmt.Errorf("STAGELY_SHUTDOWN_GRACE %q: want a duration such as 2m or 90s", v)
		}
		c.ShutdownGrace = d
	}
	if err := c.loadUpdateEnv(getenv); err != nil {
		return config{}, err
	}
	if err := c.loadPreviewEnv(getenv); err != nil {
		return config{}, err
	}
	if v := strings.TrimSpace(getenv("STAGELY_LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return config{}, fmt.Errorf("STAGELY_LOG_LEVEL %q: want debug, info, warn or error", v)
		}
	}

	switch {
	case c.ServerURL == "":
		return config{}, fmt.Errorf("no server URL: set \"server_url\" in %s or STAGELY_SERVER_URL", path)
	case c.Token == "":
		return config{}, fmt.Errorf("no token: set \"token\" in %s or STAGELY_TOKEN", path)
	case !strings.HasPrefix(c.Token, tokenPrefix) && !isBootstrap(c.Token):
		return config{}, errors.New("token is not a Stagely agent token (it starts with stgb_ or stg_): copy it again from the dashboard")
	case strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return config{}, errors.New("token contains spaces or control characters: copy it again from the dashboard")
	}
	if _, err := conn.WebSocketURL(c.ServerURL); err != nil {
		return config{}, err
	}
	if !strings.HasPrefix(c.DataDir, "/") {
		return config{}, fmt.Errorf("STAGELY_DATA_DIR %q: must be an absolute path", c.DataDir)
	}
	return c, nil
}

// agentID is the agent id a token of the form stg_<agentid>_<secret> (or stgb_...) carries, the only
// part of a token safe to log; "" for any other form.
func agentID(token string) string {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(token, bootstrapPrefix); !ok {
			return ""
		}
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return ""
	}
	return id
}

// plaintext reports whether the server URL sends the token unencrypted to another host.
func plaintext(serverURL string) bool {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// loadUpdateEnv reads the self-update settings from the environment.
func (c *config) loadUpdateEnv(getenv func(string) string) error {
	switch v := strings.ToLower(strings.TrimSpace(getenv("STAGELY_SELF_UPDATE"))); v {
	case "", "on", "true", "1":
	case "off", "false", "0":
		c.SelfUpdate = false
	default:
		return fmt.Errorf("STAGELY_SELF_UPDATE %q: want on or off", v)
	}
	if v := strings.TrimSpace(getenv("STAGELY_UPDATE_CONFIRM_WITHIN")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("STAGELY_UPDATE_CONFIRM_WITHIN %q: want a duration such as 2m", v)
		}
		c.UpdateConfirmWithin = d
	}
	return nil
}
