package selfupdate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/agent/selfupdate"
)

// build is an executable standing in for an agent build: a script answering --version.
func build(version string) []byte {
	return []byte("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'stagely-agent " + version + "'; exit 0; fi\nsleep 60\n")
}

// exitsAtOnce is a build that starts and dies.
var exitsAtOnce = []byte("#!/bin/sh\nexit 3\n")

type fixture struct {
	t      *testing.T
	dir    string
	exe    string
	data   string
	srv    *httptest.Server
	mu     sync.Mutex
	served []byte
	execs  []string
	// stall, when set, makes the server send half the build, say so on stalled and wait
	// for stall to close.
	stall, stalled chan struct{}
}

func newFixture(t *testing.T, running string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), data: t.TempDir()}
	f.exe = filepath.Join(f.dir, "stagely-agent")
	if err := os.WriteFile(f.exe, build(running), 0o755); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/agent/download/linux/amd64" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		served, stall, stalled := f.served, f.stall, f.stalled
		f.mu.Unlock()
		if stall != nil {
			w.Header().Set("Content-Length", fmt.Sprint(len(served)))
			_, _ = w.Write(served[:len(served)/2])
			w.(http.Flusher).Flush()
			close(stalled)
			select {
			case <-stall:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write(served)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) serve(b []byte) protocol.Update {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = b
	sum := sha256.Sum256(b)
	return protocol.Update{Version: "v2", Platform: "linux/amd64", SHA256: hex.EncodeToString(sum[:]), Path: "/agent/download/linux/amd64"}
}

// installV2 has the running v1 install an offered v2, as an update does before it re-executes.
func (f *fixture) installV2() {
	f.t.Helper()
	if err := f.updater("v1", time.Hour).Apply(context.Background(), f.serve(build("v2")), idle); err != nil {
		f.t.Fatal(err)
	}
}

// resumeTrial starts v2 after installV2 with confirm to connect in, and fails unless that start
// is a trial.
func (f *fixture) resumeTrial(confirm time.Duration) *selfupdate.Trial {
	f.t.Helper()
	trial, err := f.updater("v2", confirm).Resume()
	if err != nil || trial == nil {
		f.t.Fatalf("Resume after the update = %v, %v; want a trial", trial, err)
	}
	return trial
}

func (f *fixture) updater(version string, confirm time.Duration) *selfupdate.Updater {
	f.t.Helper()
	u, err := selfupdate.New(selfupdate.Options{
		Exe: f.exe, DataDir: f.data, ServerURL: f.srv.URL, Version: version, ConfirmWithin: confirm,
		Exec: func(path string, argv, _ []string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.execs = append(f.execs, path+" "+strings.Join(argv[1:], " "))
			return nil
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

func (f *fixture) binary(path string) string {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) wantRunning(version string) {
	f.t.Helper()
	if got := f.binary(f.exe); got != string(build(version)) {
		f.t.Fatalf("the binary is %q, want the %s build", got, version)
	}
	if _, err := os.Stat(f.exe + ".new"); !errors.Is(err, os.ErrNotExist) {
		f.t.Fatalf("a download was left beside the binary: %v", err)
	}
}

func idle() bool { return true }

func TestApply_InstallsTheVerifiedBuildKeepingTheOldOneAsPrev(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	f.installV2()
	f.wantRunning("v2")
	if got := f.binary(f.exe + ".prev"); got != string(build("v1")) {
		t.Fatalf(".prev = %q, want the v1 build", got)
	}
	fi, err := os.Stat(f.exe)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary mode %v, %v", fi.Mode(), err)
	}
}

func TestApply_RefusedUpdatesLeaveTheRunningBinary(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		upd     func(f *fixture) protocol.Update
		hold    func() bool
		wantErr string
	}{
		{"wrong checksum", func(f *fixture) protocol.Update {
			u := f.serve(build("v2"))
			f.serve([]byte("tampered on the way"))
			return u
		}, idle, "checksum mismatch"},
		{"binary that exits at once", func(f *fixture) protocol.Update { return f.serve(exitsAtOnce) }, idle, "does not run here"},
		{"binary of another version", func(f *fixture) protocol.Update { u := f.serve(build("v3")); return u }, idle, `want "stagely-agent v2"`},
		{"missing on the server", func(f *fixture) protocol.Update { u := f.serve(build("v2")); u.Path = "/nope"; return u }, idle, "HTTP 404"},
		{"a deploy arrived meanwhile", func(f *fixture) protocol.Update { return f.serve(build("v2")) }, func() bool { return false }, "deploy arrived"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "v1")
			err := f.updater("v1", time.Hour).Apply(context.Background(), tc.upd(f), tc.hold)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Apply = %v, want an error about %q", err, tc.wantErr)
			}
			f.wantRunning("v1")
		})
	}
}

func TestApply_AFailedVersionIsDeclinedUntilRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	u := f.updater("v1", time.Hour)
	if err := u.Apply(context.Background(), f.serve(exitsAtOnce), idle); err == nil {
		t.Fatal("a broken build was installed")
	}
	err := u.Apply(context.Background(), f.serve(build("v2")), idle)
	if err == nil || !strings.Contains(err.Error(), "tried again after") {
		t.Fatalf("second offer of the failed version: %v", err)
	}
	f.wantRunning("v1")
}

func TestApply_AShutdownMidDownloadIsNotRecordedAsAFailedVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	u := f.updater("v1", time.Hour)
	upd := f.serve(build("v2"))
	stall, stalled := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.stall, f.stalled = stall, stalled
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Apply(ctx, upd, idle) }()
	<-stalled // the download is under way
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Apply installed a build whose download was cancelled")
	}
	close(stall)
	f.mu.Lock()
	f.stall = nil
	f.mu.Unlock()
	f.wantRunning("v1")
	if err := u.Apply(context.Background(), upd, idle); err != nil {
		t.Fatalf("the offer after the shutdown: %v, want it installed", err)
	}
	f.wantRunning("v2")
}

func TestTrial_ConfirmedByHelloKeepsTheNewBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	f.installV2()
	trial := f.resumeTrial(time.Hour)
	trial.Confirm()
	if again, err := f.updater("v2", time.Hour).Resume(); again != nil || err != nil {
		t.Fatalf("Resume after the confirmation = %v, %v; want no trial", again, err)
	}
	f.wantRunning("v2")
}

func TestTrial_NewBuildThatNeverConnectsIsRolledBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	f.installV2()
	trial := f.resumeTrial(50 * time.Millisecond)
	select {
	case <-trial.Expired():
	case <-time.After(time.Minute):
		t.Fatal("the trial never expired")
	}
	if err := trial.RollBack(); err != nil {
		t.Fatal(err)
	}
	f.wantRunning("v1")
	if len(f.execs) != 1 || !strings.HasPrefix(f.execs[0], f.exe) {
		t.Fatalf("execs = %q, want the restored binary executed once", f.execs)
	}
	// The restored build does not try v2 again soon.
	err := f.updater("v1", time.Hour).Apply(context.Background(), f.serve(build("v2")), idle)
	if err == nil || !strings.Contains(err.Error(), "did not connect") {
		t.Fatalf("offer after the rollback: %v", err)
	}
}

func TestTrial_NewBuildThatKeepsCrashingIsRolledBackAtStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "v1")
	f.installV2()
	// systemd restarts a build that dies before it connects; each start counts.
	for start := 1; start <= 3; start++ {
		if trial, err := f.updater("v2", time.Hour).Resume(); trial == nil || err != nil {
			t.Fatalf("start %d: Resume = %v, %v; want a trial", start, trial, err)
		}
	}
	if trial, err := f.updater("v2", time.Hour).Resume(); trial != nil || err != nil {
		t.Fatalf("fourth start: Resume = %v, %v; want the rollback", trial, err)
	}
	f.wantRunning("v1")
	if len(f.execs) != 1 {
		t.Fatalf("execs = %q, want the restored binary executed", f.execs)
	}
}

// TestApply_RedirectsLeaveTheServerOnlyForItsOwnHost: the download follows a redirect only
// to the server's own scheme and host; anywhere else is refused and nothing is installed.
func TestApply_RedirectsLeaveTheServerOnlyForItsOwnHost(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(build("v2"))
	}))
	t.Cleanup(elsewhere.Close)
	cases := []struct {
		name    string
		target  func(f *fixture) string
		wantErr string
	}{
		{"to another host", func(*fixture) string { return elsewhere.URL + "/agent/download/linux/amd64" }, "redirect to " + elsewhere.URL},
		{"to the same host", func(*fixture) string { return "/agent/download/linux/amd64" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "v1")
			upd := f.serve(build("v2"))
			target := tc.target(f)
			mux := http.NewServeMux()
			mux.Handle("/agent/download/", f.srv.Config.Handler)
			mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) })
			moving := httptest.NewServer(mux)
			t.Cleanup(moving.Close)
			f.srv = moving
			upd.Path = "/moved"
			err := f.updater("v1", time.Hour).Apply(context.Background(), upd, idle)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Apply = %v, want the build installed", err)
				}
				f.wantRunning("v2")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Apply = %v, want an error about %q", err, tc.wantErr)
			}
			f.wantRunning("v1")
		})
	}
}
