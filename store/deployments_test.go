package store_test

import (
	"testing"
	"time"

	"github.com/stagely/stagely/store"
)

func TestDeployments_CreatedOnTheCallersClockOrElseTheDatabases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.newProject("web", 500, "main")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: p.ID, SHA: sha(1), Ref: "refs/heads/main", Trigger: store.TriggerPush, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if !d.CreatedAt.Equal(at) {
		t.Fatalf("created at %v, want the caller's %v", d.CreatedAt, at)
	}
	before := time.Now().Add(-time.Minute)
	if d := f.newDeployment(p.ID, 2); d.CreatedAt.Before(before) || d.CreatedAt.After(at) {
		t.Fatalf("created at %v without a time, want the database's now", d.CreatedAt)
	}
}
