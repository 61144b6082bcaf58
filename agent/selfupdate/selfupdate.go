// Package selfupdate replaces the agent's own binary with the build the server offers
// (docs/agents.md, "Self-update"): download beside the running binary, verify the checksum,
// run the new binary's --version, then swap it in with a rename, keeping the old one as
// <binary>.prev. After the re-exec the new build is on trial: unless the server accepts its
// connection within a deadline (and within a few starts, for a build that crashes under
// systemd), the old binary is put back and executed again.
package selfupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/protocol"
)

// ErrBusy is returned by Apply when a deploy arrived while the update was downloading.
var ErrBusy = errors.New("a deploy arrived first; the update waits for the next idle moment")

// maxStarts is how many times the new build may start without confirming before the old
// one is put back: a build that crashes at once is restarted by systemd every few seconds.
const maxStarts = 3

// Options configure an Updater. Zero values take the defaults named on each field.
type Options struct {
	// Exe is the running binary (default os.Executable with symlinks resolved).
	Exe string
	// DataDir holds update.json, the record of an update on trial and of the last failure.
	DataDir string
	// ServerURL is the control plane's base URL; UPDATE's path is resolved against it.
	ServerURL string
	// Version is the running build's version.
	Version string
	// HTTPClient downloads the binary (default: a client with a 10 minute timeout).
	HTTPClient *http.Client
	// Logger receives progress and failures (default: discard).
	Logger *slog.Logger
	// ConfirmWithin is how long a new build has to get a connection accepted (default 2m).
	ConfirmWithin time.Duration
	// RetryAfter is how long a version that failed is declined before it is tried again (default 1h).
	RetryAfter time.Duration
	// CheckTimeout bounds the new binary's --version run (default 30s).
	CheckTimeout time.Duration
	// MaxBytes bounds the download (default 256 MiB).
	MaxBytes int64
	// Exec replaces the process (default syscall.Exec); tests capture it.
	Exec func(path string, argv, env []string) error
	// Now is the clock of the failure record (default time.Now).
	Now func() time.Time
}

// Updater applies updates to the running binary.
type Updater struct {
	opts Options
	log  *slog.Logger
}

// New resolves the running binary and returns an Updater.
func New(opts Options) (*Updater, error) {
	if opts.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the agent's own binary: %w", err)
		}
		opts.Exe = exe
	}
	exe, err := filepath.EvalSymlinks(opts.Exe)
	if err != nil {
		return nil, fmt.Errorf("resolve the agent's own binary %s: %w", opts.Exe, err)
	}
	opts.Exe = exe
	if opts.DataDir == "" || opts.ServerURL == "" {
		return nil, errors.New("selfupdate: DataDir and ServerURL are required")
	}
	server, err := url.Parse(opts.ServerURL)
	if err != nil || server.Host == "" {
		return nil, fmt.Errorf("selfupdate: server URL %q: want https://host", opts.ServerURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	opts.HTTPClient = sameHostRedirects(opts.HTTPClient, server)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	setDur(&opts.ConfirmWithin, 2*time.Minute)
	setDur(&opts.RetryAfter, time.Hour)
	setDur(&opts.CheckTimeout, 30*time.Second)
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.Exec == nil {
		opts.Exec = syscall.Exec
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Updater{opts: opts, log: opts.Logger}, nil
}

// sameHostRedirects returns a copy of client that follows a redirect only to the server's
// own scheme and host: the build comes from the server the agent trusts, and a redirect
// elsewhere (a compromised proxy, an open redirect) is refused before anything is fetched.
func sameHostRedirects(client *http.Client, server *url.URL) *http.Client {
	c := *client
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != server.Scheme || req.URL.Host != server.Host {
			return fmt.Errorf("redirect to %s://%s refused: the agent downloads its build only from %s://%s",
				req.URL.Scheme, req.URL.Host, server.Scheme, server.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (u *Updater) newPath() string  { return u.opts.Exe + ".new" }
func (u *Updater) prevPath() string { return u.opts.Exe + ".prev" }

// Apply downloads and checks the offered build and, if hold still finds the agent idle
// (it then takes no new job), installs it; the caller then restarts the process with Exec.
// An error leaves the running binary in place; a failure other than ErrBusy or the end of
// ctx is recorded, and the same version is declined for RetryAfter.
func (u *Updater) Apply(ctx context.Context, upd protocol.Update, hold func() bool) error {
	st, err := u.readState()
	if err != nil {
		return err
	}
	if st.Failed == upd.Version && u.opts.Now().Sub(st.FailedAt) < u.opts.RetryAfter {
		return fmt.Errorf("update to %s failed at %s (%s); it is tried again after %s", upd.Version,
			st.FailedAt.UTC().Format(time.RFC3339), st.Error, st.FailedAt.Add(u.opts.RetryAfter).UTC().Format(time.RFC3339))
	}
	err = u.apply(ctx, upd, hold)
	// A shutdown mid-download says nothing about the build: the next start may take it.
	stopped := ctx.Err() != nil || errors.Is(err, context.Canceled)
	if err != nil && !errors.Is(err, ErrBusy) && !stopped {
		u.recordFailure(upd.Version, err)
	}
	return err
}

func (u *Updater) apply(ctx context.Context, upd protocol.Update, hold func() bool) error {
	if err := u.download(ctx, upd); err != nil {
		_ = os.Remove(u.newPath())
		return err
	}
	if err := u.check(ctx, u.newPath(), upd.Version); err != nil {
		_ = os.Remove(u.newPath())
		return err
	}
	if !hold() {
		_ = os.Remove(u.newPath())
		return ErrBusy
	}
	return u.install(upd.Version)
}

// download writes the build beside the running binary, hashing it on the way.
func (u *Updater) download(ctx context.Context, upd protocol.Update) error {
	src := strings.TrimRight(u.opts.ServerURL, "/") + upd.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	resp, err := u.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: HTTP %d", src, resp.StatusCode)
	}
	f, err := os.OpenFile(u.newPath(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o700)
	if err != nil {
		return fmt.Errorf("write the new build beside %s: %w", u.opts.Exe, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, u.opts.MaxBytes+1))
	if err == nil && n > u.opts.MaxBytes {
		err = fmt.Errorf("larger than %d bytes", u.opts.MaxBytes)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != upd.SHA256 {
		return fmt.Errorf("checksum mismatch for %s: got sha256 %s, the server announced %s; the download is discarded", src, got, upd.SHA256)
	}
	if err := os.Chmod(u.newPath(), 0o755); err != nil {
		return fmt.Errorf("make the new build executable: %w", err)
	}
	return nil
}

// check runs the new binary's --version: it must start on this machine and be the
// version offered. A binary that exits at once, or is for another platform, fails here.
func (u *Updater) check(ctx context.Context, path, version string) error {
	ctx, cancel := context.WithTimeout(ctx, u.opts.CheckTimeout)
	defer cancel()
	var out bytes.Buffer
	var err error
	for attempt := 1; ; attempt++ {
		out.Reset()
		cmd := exec.CommandContext(ctx, path, "--version")
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		// ETXTBSY: a process forked elsewhere in the agent (a docker command) may still
		// hold the just-written file open until it execs (golang.org/issue/22315).
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 5 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	got := strings.TrimSpace(out.String())
	if err != nil {
		return fmt.Errorf("the new build does not run here: %s --version: %w (output %.200q)", path, err, got)
	}
	if want := "stagely-agent " + version; got != want {
		return fmt.Errorf("the new build reports %.200q, want %q", got, want)
	}
	return nil
}

// install keeps the running binary as .prev (a hard link, so the running file never
// moves), records the trial, and renames the new build over the binary.
func (u *Updater) install(version string) error {
	exe, prev := u.opts.Exe, u.prevPath()
	if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the older %s: %w", prev, err)
	}
	if err := os.Link(exe, prev); err != nil {
		return fmt.Errorf("keep the running build as %s: %w", prev, err)
	}
	if err := u.writeState(state{From: u.opts.Version, To: version}); err != nil {
		return err
	}
	if err := os.Rename(u.newPath(), exe); err != nil {
		_ = u.writeState(state{})
		return fmt.Errorf("install the new build at %s: %w", exe, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(exe)); err != nil {
		return err
	}
	u.log.Info("new build installed; restarting into it", "from", u.opts.Version, "to", version, "binary", exe, "previous", prev)
	return nil
}

// Exec replaces the process with the binary at Exe, with the same arguments and environment.
func (u *Updater) Exec() error {
	argv := append([]string{u.opts.Exe}, os.Args[1:]...)
	if err := u.opts.Exec(u.opts.Exe, argv, os.Environ()); err != nil {
		return fmt.Errorf("execute %s: %w", u.opts.Exe, err)
	}
	return nil
}
