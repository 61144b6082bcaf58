package selfupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
)

// stateName is the file in DataDir that outlives the re-exec.
const stateName = "update.json"

// state is update.json: the update on trial, if any, and the last failure.
type state struct {
	// From and To are the versions of an installed update not yet confirmed.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Starts counts the starts of To without a confirmation.
	Starts int `json:"starts,omitempty"`
	// Failed is the last version whose update failed, when and why.
	Failed   string    `json:"failed,omitempty"`
	FailedAt time.Time `json:"failed_at,omitzero"`
	Error    string    `json:"error,omitempty"`
}

func (u *Updater) statePath() string { return filepath.Join(u.opts.DataDir, stateName) }

func (u *Updater) readState() (state, error) {
	var st state
	b, err := os.ReadFile(u.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", u.statePath(), err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		// A torn file is no reason to stop the agent: start over without a record.
		u.log.Warn("update record unreadable; ignoring it", "path", u.statePath(), "err", err)
		return state{}, nil
	}
	return st, nil
}

// writeState replaces update.json durably (atomicfile).
func (u *Updater) writeState(st state) error {
	old, err := u.readState()
	if err != nil {
		return err
	}
	if st.Failed == "" {
		st.Failed, st.FailedAt, st.Error = old.Failed, old.FailedAt, old.Error
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the update record: %w", err)
	}
	if err := atomicfile.WriteFile(u.statePath(), b, 0o600); err != nil {
		return fmt.Errorf("write the update record: %w", err)
	}
	return nil
}

// recordFailure notes that version failed, so it is declined for RetryAfter; the trial,
// if any, is over.
func (u *Updater) recordFailure(version string, cause error) {
	u.log.Error("self-update failed; the agent keeps its build", "version", u.opts.Version, "offered", version, "err", cause)
	st := state{Failed: version, FailedAt: u.opts.Now(), Error: cause.Error()}
	if err := u.writeState(st); err != nil {
		u.log.Error("record the failed update", "err", err)
	}
}

// Trial is a new build's probation after an update: Confirm ends it, the deadline or too
// many starts roll back.
type Trial struct {
	u       *Updater
	from    string
	once    sync.Once
	timer   *time.Timer
	expired chan struct{}
}

// Resume is called at start-up, before connecting. It returns the running build's trial,
// or nil when there is none; it clears the record of an update that did not come up (the
// old build is running again). A build started too often without confirming is rolled
// back at once: Resume then executes the old binary and returns only if that fails.
func (u *Updater) Resume() (*Trial, error) {
	st, err := u.readState()
	if err != nil || st.To == "" {
		return nil, err
	}
	if st.To != u.opts.Version {
		// The process runs a build other than the one installed: the rollback ran.
		u.recordFailure(st.To, fmt.Errorf("the new build did not come up; %s runs again", u.opts.Version))
		return nil, nil
	}
	st.Starts++
	if err := u.writeState(st); err != nil {
		return nil, err
	}
	t := &Trial{u: u, from: st.From, expired: make(chan struct{})}
	if st.Starts > maxStarts {
		return nil, t.rollBack(fmt.Errorf("started %d times without connecting", st.Starts-1))
	}
	u.log.Info("running a new build on trial: it must connect within the deadline",
		"version", u.opts.Version, "previous", st.From, "deadline", u.opts.ConfirmWithin, "start", st.Starts)
	t.timer = time.AfterFunc(u.opts.ConfirmWithin, func() { close(t.expired) })
	return t, nil
}

// Expired is closed when the deadline passes without Confirm; the caller then calls RollBack.
func (t *Trial) Expired() <-chan struct{} { return t.expired }

// Confirm ends the trial: the server accepted the new build's connection. It is safe to
// call more than once and on a nil Trial.
func (t *Trial) Confirm() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		if t.timer != nil && !t.timer.Stop() {
			return // expired first: the rollback wins
		}
		if err := t.u.writeState(state{}); err != nil {
			t.u.log.Error("confirm the update", "err", err)
			return
		}
		t.u.log.Info("update confirmed: the new build connected", "version", t.u.opts.Version, "previous", t.from)
	})
}

// RollBack puts the previous binary back, records the failure and executes it; it returns
// only when that fails.
func (t *Trial) RollBack() error {
	return t.rollBack(fmt.Errorf("did not connect and get accepted by the server within %s", t.u.opts.ConfirmWithin))
}

func (t *Trial) rollBack(cause error) error {
	u := t.u
	u.recordFailure(u.opts.Version, fmt.Errorf("the new build %w; rolled back to %s", cause, t.from))
	if err := os.Rename(u.prevPath(), u.opts.Exe); err != nil {
		return fmt.Errorf("roll back to %s: %w", u.prevPath(), err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(u.opts.Exe)); err != nil {
		return err
	}
	return u.Exec()
}
