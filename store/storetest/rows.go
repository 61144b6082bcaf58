package storetest

import (
	"context"
	"testing"

	"github.com/stagely/stagely/store"
)

// The rows a test stands a project on. Each helper stores one row as the store's own method
// does and fails the test on any error, since a test cannot go on without its setup.

// NewUser stores u (a GitHub id and a login at least) and returns the row.
func NewUser(t testing.TB, st *store.Store, u store.User) store.User {
	t.Helper()
	return must(t, "user", func(ctx context.Context) (store.User, error) { return st.UpsertUser(ctx, u) })
}

// NewInstallation stores the installation in and returns the row.
func NewInstallation(t testing.TB, st *store.Store, in store.Installation) store.Installation {
	t.Helper()
	return must(t, "installation", func(ctx context.Context) (store.Installation, error) { return st.UpsertInstallation(ctx, in) })
}

// NewProject creates the project p (its user and installation stored first) and returns the row.
func NewProject(t testing.TB, st *store.Store, p store.NewProject) store.Project {
	t.Helper()
	return must(t, "project", func(ctx context.Context) (store.Project, error) { return st.CreateProject(ctx, p) })
}

func must[T any](t testing.TB, what string, create func(context.Context) (T, error)) T {
	t.Helper()
	row, err := create(context.Background())
	if err != nil {
		t.Fatalf("storetest: create %s: %v", what, err)
	}
	return row
}

// NewAgent creates the agent name of userID with a token hash no token matches, for tests
// that need an agent row but never connect it, and returns the row.
func NewAgent(t testing.TB, st *store.Store, userID int64, name string) store.Agent {
	t.Helper()
	return must(t, "agent", func(ctx context.Context) (store.Agent, error) {
		return st.CreateAgent(ctx, userID, name, func(int64) (string, error) { return "$2a$10$fakehashfortests", nil })
	})
}
