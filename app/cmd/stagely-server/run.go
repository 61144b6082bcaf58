package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/stagely/stagely/app/config"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
)

// errUsage is returned after the usage text was printed for a bad command line.
var errUsage = errors.New("usage")

const usage = `stagely-server — the Stagely control plane (GitHub App, agent hub, API, dashboard)

Usage:
  stagely-server [serve]     migrate the database, then serve HTTP on STAGELY_LISTEN
  stagely-server migrate     apply pending database migrations and exit
  stagely-server rotate-key  re-seal every stored secret under STAGELY_SECRET_KEY
                             (put the old key in STAGELY_SECRET_KEY_PREVIOUS)
  stagely-server --version   print the version
  stagely-server --help      print this help

Environment (see docs/configuration.md):
  STAGELY_DATABASE_URL        PostgreSQL URL (required)
  STAGELY_SECRET_KEY          base64 of 32 random bytes: openssl rand -base64 32 (required to serve)
  STAGELY_SECRET_KEY_PREVIOUS comma-separated older keys, still accepted to open values
  STAGELY_LISTEN              listen address (default :8080)
  STAGELY_PUBLIC_URL          the URL GitHub and browsers reach this server at
  STAGELY_GITHUB_API_URL      default https://api.github.com/
  STAGELY_GITHUB_URL          default https://github.com
  STAGELY_GITHUB_APP_ID, STAGELY_GITHUB_APP_PRIVATE_KEY or STAGELY_GITHUB_APP_PRIVATE_KEY_FILE,
  STAGELY_GITHUB_WEBHOOK_SECRET, STAGELY_GITHUB_CLIENT_ID, STAGELY_GITHUB_CLIENT_SECRET
                              the GitHub App (or create it through /setup)
`

// run is the whole program: main only supplies the process's context, arguments,
// environment and output streams, so tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unexpected argument %q", errUsage, args[1])
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "-v", "--version", "version":
		fmt.Fprintf(stdout, "stagely-server %s\n", version)
		return nil
	case "migrate":
		return runMigrate(ctx, getenv, stdout)
	case "rotate-key":
		return runRotateKey(ctx, getenv, stdout)
	case "serve":
		return runServe(ctx, getenv, logger)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w (check STAGELY_DATABASE_URL and that PostgreSQL is running)", err)
	}
	return st, nil
}

func runMigrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv, config.Needs{Database: true})
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := migrations.Up(ctx, st.DB())
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "schema already at version %d; nothing to apply\n", res.Version)
		return nil
	}
	fmt.Fprintf(stdout, "applied %d migration(s) %v; schema at version %d\n", len(res.Applied), res.Applied, res.Version)
	return nil
}

// opened is what the commands that touch sealed values share: the configuration, the
// keyring and a migrated store (closed by the caller).
type opened struct {
	cfg    config.Config
	keys   *seal.Keyring
	st     *store.Store
	schema migrations.Result
}

func openWithKeys(ctx context.Context, getenv func(string) string) (opened, error) {
	cfg, err := config.Load(getenv, config.Needs{Database: true, SecretKey: true})
	if err != nil {
		return opened{}, err
	}
	keys, err := seal.NewKeyring(cfg.SecretKey, cfg.PreviousKeys...)
	if err != nil {
		return opened{}, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return opened{}, err
	}
	schema, err := migrations.Up(ctx, st.DB())
	if err != nil {
		st.Close()
		return opened{}, err
	}
	return opened{cfg: cfg, keys: keys, st: st, schema: schema}, nil
}

func runRotateKey(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	o, err := openWithKeys(ctx, getenv)
	if err != nil {
		return err
	}
	defer o.st.Close()
	rep, err := secrets.Rotate(ctx, o.st, o.keys)
	if errors.Is(err, seal.ErrUnknownKey) {
		return fmt.Errorf("%w\nnothing was changed: put the key these values were sealed with in STAGELY_SECRET_KEY_PREVIOUS", err)
	}
	if err != nil {
		return fmt.Errorf("%w\nnothing was changed", err)
	}
	fmt.Fprintf(stdout, "re-sealed under key %s: %d secret(s), %d session token(s), %d App credential set(s)\n",
		o.keys.CurrentKeyID(), rep.Secrets, rep.SessionTokens, rep.AppCredential)
	return nil
}

func runServe(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	o, err := openWithKeys(ctx, getenv)
	if err != nil {
		return err
	}
	defer o.st.Close()
	cfg, keys, st := o.cfg, o.keys, o.st
	logger.Info("database ready", "schema_version", o.schema.Version, "applied", len(o.schema.Applied))
	// Whatever this process's previous run left "online" is not connected to this one.
	if _, err := st.MarkStaleAgentsOffline(ctx, time.Now().Add(time.Minute)); err != nil {
		return fmt.Errorf("reset agent states: %w", err)
	}

	srv, err := newServer(ctx, cfg, st, keys, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set STAGELY_LISTEN to a free address)", cfg.Listen, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL.String(), "github_app", cfg.App.Configured())
	return srv.run(ctx, ln)
}
