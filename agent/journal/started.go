package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/protocol"
)

// startedDir holds one start record per job that began and has not ended.
const startedDir = "started"

// Started is a job the agent began and has not finished: what a restarted agent needs to
// bring the job's project to a known state. It holds no secret and no token.
type Started struct {
	Job protocol.Deploy `json:"job"`
	// Phase is the last phase the job reached ("" before the first).
	Phase     string    `json:"phase"`
	StartedAt time.Time `json:"started_at"`
	// Recoveries counts the recoveries of the job begun by restarted agents, the one
	// running included: each numbers its log lines in a range of its own.
	Recoveries int `json:"recoveries,omitempty"`
}

func (j *Journal) startedFile(jobID string) string {
	return filepath.Join(j.dir, startedDir, filepath.Base(j.fileName(jobID)))
}

// Begin records that a job starts. The record keeps the job without its secrets and its
// source token: they must never reach the disk.
func (j *Journal) Begin(job protocol.Deploy) error {
	if job.JobID == "" {
		return errors.New("journal job start: empty job id")
	}
	job.Secrets = nil
	job.Source.Token = ""
	return j.putStarted(Started{Job: job, StartedAt: j.now().UTC()})
}

// Phase records the phase a started job has reached.
func (j *Journal) Phase(jobID, phase string) error {
	j.mu.Lock()
	rec, err := readStarted(j.startedFile(jobID))
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("journal phase %s of job %s: %w", phase, jobID, err)
	}
	rec.Phase = phase
	return j.putStarted(rec)
}

// Recovering records that a restarted agent begins to recover a started job and returns
// how many recoveries of it have begun, this one included. It is written before the
// recovery logs anything: an agent killed during it numbers the next recovery's lines past
// this one's.
func (j *Journal) Recovering(jobID string) (int, error) {
	j.mu.Lock()
	rec, err := readStarted(j.startedFile(jobID))
	j.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("journal recovery of job %s: %w", jobID, err)
	}
	rec.Recoveries++
	return rec.Recoveries, j.putStarted(rec)
}

func (j *Journal) putStarted(rec Started) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode start of job %s: %w", rec.Job.JobID, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	dir := filepath.Join(j.dir, startedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal start of job %s: %w", rec.Job.JobID, err)
	}
	if err := atomicfile.WriteFile(j.startedFile(rec.Job.JobID), b, 0o600); err != nil {
		return fmt.Errorf("journal start of job %s: %w", rec.Job.JobID, err)
	}
	return nil
}

// End drops a job's start record once its result is journaled; an absent record is not
// an error.
func (j *Journal) End(jobID string) error {
	if err := j.remove(j.startedFile(jobID)); err != nil {
		return fmt.Errorf("end journaled start of job %s: %w", jobID, err)
	}
	return nil
}

// Interrupted returns the jobs that began and never ended, oldest first: after a start,
// the jobs a killed agent was running. An unreadable record is skipped and reported.
func (j *Journal) Interrupted() ([]Started, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out, skipped, err := readDir(filepath.Join(j.dir, startedDir), readStarted)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list started jobs: %w", err)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].StartedAt.Before(out[b].StartedAt) })
	return out, skipped
}

func readStarted(path string) (Started, error) {
	return readJSON(path, "start record", func(s Started) string { return s.Job.JobID })
}
