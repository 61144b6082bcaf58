// Package journal keeps job results on local disk until the server acknowledges them,
// so a result survives a dropped connection and an agent restart.
//
// One file per job under the journal directory, mode 0600, written to a temporary
// file, fsync'd, renamed into place and the directory fsync'd, so a crash leaves
// either the whole previous state or the whole new one.
package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/protocol"
)

const suffix = ".json"

// Journal is a directory of unacknowledged job results; it is safe for concurrent use.
type Journal struct {
	dir string
	mu  sync.Mutex
	now func() time.Time
}

// record is the on-disk form of one entry.
type record struct {
	FinishedAt time.Time          `json:"finished_at"`
	Result     protocol.JobResult `json:"result"`
}

// Entry is one journaled result with the time it was written.
type Entry struct {
	FinishedAt time.Time
	Result     protocol.JobResult
}

// Open creates the directory (0700) if needed and returns its journal.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create journal directory: %w", err)
	}
	// Leftover temporary files are writes a crash interrupted; the rename never
	// happened, so they hold nothing the journal promised to keep.
	for _, pattern := range []string{"*" + atomicfile.TempSuffix, filepath.Join(startedDir, "*"+atomicfile.TempSuffix)} {
		tmps, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, p := range tmps {
			_ = os.Remove(p)
		}
	}
	return &Journal{dir: dir, now: time.Now}, nil
}

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// fileName maps a job id, which comes from the server, to a name that cannot escape the
// directory whatever the id holds.
func (j *Journal) fileName(jobID string) string {
	sum := sha256.Sum256([]byte(jobID))
	return filepath.Join(j.dir, hex.EncodeToString(sum[:16])+suffix)
}

// Put stores a result durably, replacing any earlier result of the same job.
func (j *Journal) Put(r protocol.JobResult) error {
	if r.JobID == "" {
		return errors.New("journal result: empty job id")
	}
	b, err := json.Marshal(record{FinishedAt: j.now().UTC(), Result: r})
	if err != nil {
		return fmt.Errorf("encode result of job %s: %w", r.JobID, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := atomicfile.WriteFile(j.fileName(r.JobID), b, 0o600); err != nil {
		return fmt.Errorf("journal result of job %s: %w", r.JobID, err)
	}
	return nil
}

// Get returns the journaled result of a job, if there is one.
func (j *Journal) Get(jobID string) (protocol.JobResult, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, err := readRecord(j.fileName(jobID))
	if errors.Is(err, os.ErrNotExist) {
		return protocol.JobResult{}, false, nil
	}
	if err != nil {
		return protocol.JobResult{}, false, err
	}
	if rec.Result.JobID != jobID {
		return protocol.JobResult{}, false, nil
	}
	return rec.Result, true, nil
}

// Remove drops a job's result once the server has acknowledged it; removing an absent
// result is not an error, since acknowledgements may repeat.
func (j *Journal) Remove(jobID string) error {
	if err := j.remove(j.fileName(jobID)); err != nil {
		return fmt.Errorf("remove journaled result of job %s: %w", jobID, err)
	}
	return nil
}

// remove removes a file of the journal and fsyncs its directory so the removal survives a
// crash; an absent file is not an error.
func (j *Journal) remove(path string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// List returns every journaled result, oldest first. A file that cannot be read or
// decoded is skipped and reported in the error, so one corrupt entry does not hide
// the others.
func (j *Journal) List() ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	recs, skipped, err := readDir(j.dir, readRecord)
	if err != nil {
		return nil, fmt.Errorf("list journal: %w", err)
	}
	var out []Entry
	for _, rec := range recs {
		out = append(out, Entry(rec))
	}
	sort.SliceStable(out, func(a, b int) bool {
		if !out[a].FinishedAt.Equal(out[b].FinishedAt) {
			return out[a].FinishedAt.Before(out[b].FinishedAt)
		}
		return out[a].Result.JobID < out[b].Result.JobID
	})
	return out, skipped
}

// readDir reads every journal file in dir with read. A file that cannot be read is left
// out and reported in skipped, so one corrupt file does not hide the others; err is the
// directory's own error.
func readDir[T any](dir string, read func(path string) (T, error)) (recs []T, skipped, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []T
	var errs []error
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(de.Name(), suffix) {
			continue
		}
		rec, err := read(filepath.Join(dir, de.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rec)
	}
	return out, errors.Join(errs...), nil
}

func readRecord(path string) (record, error) {
	return readJSON(path, "journal entry", func(r record) string { return r.Result.JobID })
}

// readJSON reads one file of the journal, what it is named by what; a record without a job
// id is refused.
func readJSON[T any](path, what string, jobID func(T) string) (T, error) {
	var rec T
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, fmt.Errorf("read %s %s: %w", what, filepath.Base(path), err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode %s %s: %w", what, filepath.Base(path), err)
	}
	if jobID(rec) == "" {
		var zero T
		return zero, fmt.Errorf("decode %s %s: no job id", what, filepath.Base(path))
	}
	return rec, nil
}
