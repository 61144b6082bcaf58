package journal_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/journal"
	"github.com/stagely/stagely/agent/protocol"
)

// open opens the journal in dir, failing the test if it cannot.
func open(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// put journals res, failing the test if it cannot.
func put(t *testing.T, j *journal.Journal, res protocol.JobResult) {
	t.Helper()
	if err := j.Put(res); err != nil {
		t.Fatal(err)
	}
}

func result(id, status string) protocol.JobResult {
	return protocol.JobResult{
		JobID:      id,
		Status:     status,
		Services:   []protocol.ServiceStatus{{Name: "web", State: "running", Health: "healthy", ContainerID: "abc"}},
		DurationMS: 1234,
	}
}

func TestJournal_PutGetRemoveRoundTrip(t *testing.T) {
	t.Parallel()
	j := open(t, filepath.Join(t.TempDir(), "journal"))
	want := result("job-1", protocol.StatusSuccess)
	put(t, j, want)
	got, ok, err := j.Get("job-1")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v; want the result", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	if err := j.Remove("job-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := j.Get("job-1"); ok {
		t.Fatal("result still journaled after Remove")
	}
	if err := j.Remove("job-1"); err != nil {
		t.Fatalf("second Remove (a repeated ack) = %v, want nil", err)
	}
}

func TestJournal_SurvivesReopenOldestFirst(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	j := open(t, dir)
	for _, id := range []string{"c", "a", "b"} {
		put(t, j, result(id, protocol.StatusFailure))
	}
	j2 := open(t, dir)
	entries, err := j2.List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Result.JobID)
	}
	if want := []string{"c", "a", "b"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("List order = %v, want %v (write order)", ids, want)
	}
}

func TestJournal_FilesAre0600AndStayInsideDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "journal")
	j := open(t, dir)
	hostile := "../../etc/passwd"
	put(t, j, result(hostile, protocol.StatusFailure))
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 {
		t.Fatalf("journal holds %d files, want 1", len(des))
	}
	fi, err := des[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("journal file mode = %o, want 600", perm)
	}
	if got, ok, _ := j.Get(hostile); !ok || got.JobID != hostile {
		t.Fatalf("Get(%q) = %+v, %v", hostile, got, ok)
	}
	if dfi, err := os.Stat(dir); err != nil || dfi.Mode().Perm() != 0o700 {
		t.Fatalf("journal dir mode = %v, %v; want 700", dfi.Mode().Perm(), err)
	}
}

func TestJournal_CorruptEntrySkippedOthersListed(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	j := open(t, dir)
	put(t, j, result("good", protocol.StatusSuccess))
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := j.List()
	if err == nil {
		t.Fatal("List with a corrupt entry returned no error")
	}
	if len(entries) != 1 || entries[0].Result.JobID != "good" {
		t.Fatalf("List = %+v, want the good entry", entries)
	}
}

func TestJournal_InterruptedWriteCleanedOnOpen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "deadbeef.json.tmp")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := open(t, dir)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file left after Open: %v", err)
	}
	if entries, err := j.List(); err != nil || len(entries) != 0 {
		t.Fatalf("List = %v, %v; want empty", entries, err)
	}
}

func TestStarted_BeginPhaseEndWithoutSecretsOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := open(t, dir)
	job := protocol.Deploy{
		JobID:   "job-1",
		Project: protocol.Project{Name: "shop", ComposeProject: "shop"},
		SHA:     "0123456789abcdef0123456789abcdef01234567",
		Source:  protocol.Source{TarballURL: "https://example.invalid/t", Token: "ghs_sourceTOKEN"},
		Secrets: []protocol.Secret{{Key: "DB_PASSWORD", Value: "hunter2-secret", Scope: protocol.ScopeGlobal}},
	}
	if err := j.Begin(job); err != nil {
		t.Fatal(err)
	}
	if err := j.Phase("job-1", protocol.PhaseDeploying); err != nil {
		t.Fatal(err)
	}
	// What a restarted agent finds: a fresh Journal on the same directory.
	got, err := open(t, dir).Interrupted()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Job.JobID != "job-1" || got[0].Phase != protocol.PhaseDeploying || got[0].Job.SHA != job.SHA {
		t.Fatalf("interrupted = %+v, want job-1 at phase deploying", got)
	}
	if got[0].Job.Secrets != nil || got[0].Job.Source.Token != "" {
		t.Fatalf("start record kept secrets or the token: %+v", got[0].Job)
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range []string{"hunter2-secret", "ghs_sourceTOKEN"} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.End("job-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Interrupted(); err != nil || len(got) != 0 {
		t.Fatalf("after End: %+v, %v; want none", got, err)
	}
	if err := j.End("job-1"); err != nil {
		t.Fatalf("second End: %v, want nil", err)
	}
}

func TestStarted_RecoveringCountsRecoveriesAcrossReopens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := open(t, dir).Begin(protocol.Deploy{JobID: "job-1"}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		// Each restarted agent opens the journal anew.
		n, err := open(t, dir).Recovering("job-1")
		if err != nil || n != want {
			t.Fatalf("recovery %d: Recovering = %d, %v", want, n, err)
		}
	}
	j := open(t, dir)
	if err := j.Phase("job-1", protocol.PhaseDeploying); err != nil {
		t.Fatal(err)
	}
	got, err := j.Interrupted()
	if err != nil || len(got) != 1 || got[0].Recoveries != 3 || got[0].Phase != protocol.PhaseDeploying {
		t.Fatalf("Interrupted = %+v, %v; want the count kept by a later phase", got, err)
	}
	if _, err := j.Recovering("job-unknown"); err == nil {
		t.Fatal("Recovering a job never begun succeeded")
	}
}
