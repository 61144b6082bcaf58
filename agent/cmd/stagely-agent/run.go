package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/conn"
	"github.com/stagely/stagely/agent/deployer"
	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
)

const usage = `Usage: stagely-agent [--config PATH]

Runs the Stagely agent: dials the Stagely server, receives deploy jobs and runs them
with docker compose on this machine.

Configuration (the environment overrides the file):
  --config PATH            JSON file {"server_url": "...", "token": "..."} (default %s)
  STAGELY_SERVER_URL       the Stagely server, https://... (http:// only for local tests)
  STAGELY_TOKEN            the bootstrap token shown in the dashboard (stgb_...), traded
                           at the first start for the agent's own token, which is then
                           written to the config file (or a long-lived stg_... token)
  STAGELY_DATA_DIR         projects, releases and the result journal (default %s)
  STAGELY_SHUTDOWN_GRACE   how long a running deploy may finish after SIGTERM (default 2m)
  STAGELY_LOG_LEVEL        debug, info, warn or error (default info)
  STAGELY_CADDY_ADMIN      Caddy's admin API, which pull request previews are routed
                           through (default http://127.0.0.1:2019)
  STAGELY_PREVIEW_LISTEN   listeners of the previews' server in Caddy, comma-separated
                           (default :443)
  STAGELY_PREVIEW_TLS      acme (on-demand certificates), internal (Caddy's local CA)
                           or off (plain HTTP, behind a TLS proxy) (default acme)
  STAGELY_PREVIEW_ASK_LISTEN  loopback address where the agent answers Caddy's
                           on-demand TLS check (default 127.0.0.1:2020; port 0 picks one)

Flags:
  --version                print the version and exit
  --help                   print this help and exit
`

// run is the whole program; main only supplies the process's context, arguments,
// environment and output streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stagely-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", defaultConfigPath, "")
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, usage, defaultConfigPath, defaultDataDir)
			return nil
		}
		fmt.Fprintf(stderr, usage, defaultConfigPath, defaultDataDir)
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "stagely-agent", version)
		return nil
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })

	cfg, err := loadConfig(*configPath, explicit, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if isBootstrap(cfg.Token) {
		x := exchanger{client: &http.Client{Timeout: 30 * time.Second}, log: log, configPath: *configPath, firstWait: time.Second, maxWait: 30 * time.Second}
		if cfg.Token, err = x.exchange(ctx, cfg.ServerURL, cfg.Token); err != nil {
			return err
		}
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	j, err := journal.Open(filepath.Join(cfg.DataDir, "journal"))
	if err != nil {
		return err
	}
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	updater, self, onAccepted := selfUpdate(ctx, cfg, log)
	router, stopPreviews, err := startPreviews(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopPreviews()
	d := deployer.New(deployer.Options{
		DataDir:  cfg.DataDir,
		Logger:   log,
		Previews: router,
	})
	client, err := conn.New(conn.Options{
		ServerURL:     cfg.ServerURL,
		Token:         cfg.Token,
		Runner:        d,
		Journal:       j,
		AgentVersion:  version,
		Hostname:      hostname,
		Versions:      dockerVersions,
		Logger:        log,
		ShutdownGrace: cfg.ShutdownGrace,
		Updater:       updater,
		OnAccepted:    onAccepted,
		Features:      []string{protocol.FeaturePreviews},
	})
	if err != nil {
		return err
	}
	log.Info("stagely agent starting", "version", version, "server_url", cfg.ServerURL,
		"agent_id", agentID(cfg.Token), "data_dir", cfg.DataDir, "shutdown_grace", cfg.ShutdownGrace)
	if plaintext(cfg.ServerURL) {
		log.Warn("server URL is http://: the token and deploy secrets travel unencrypted; use https://")
	}
	err = client.Run(ctx)
	if errors.Is(err, conn.ErrRestart) {
		return self.Exec()
	}
	return err
}

// dockerVersions asks the local Docker engine and the compose plugin for their versions,
// for HELLO; a missing engine reports "" rather than stopping the agent, so the
// dashboard can show what is wrong. A compose built without its version ("dev") reports
// "" too (compose.Runner.Version).
func dockerVersions(ctx context.Context) (string, string) {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return commandOutput(ctx, "docker", "version", "--format", "{{.Server.Version}}"),
		compose.NewRunner(compose.RunnerOptions{}).Version(vctx)
}

func commandOutput(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return ""
	}
	return strings.TrimSpace(out.String())
}
