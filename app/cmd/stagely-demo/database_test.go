package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestDropStale_LeavesADatabaseTooYoungToBeALeftover covers two demos started together on one
// machine: one has created its database and not yet started the server that connects to it,
// when the other cleans up. Only the database older than staleAfter is dropped.
func TestDropStale_LeavesADatabaseTooYoungToBeALeftover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := openAdmin(ctx, adminURLForTest())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	young, _, err := admin.create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf("%s%d", demoDBPrefix, time.Now().Add(-staleAfter-time.Minute).UnixNano())
	if _, err := admin.db.ExecContext(ctx, `CREATE DATABASE `+quoteIdent(old)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{young, old} {
			if err := admin.drop(context.Background(), n); err != nil {
				t.Error(err)
			}
		}
	})

	dropped, err := admin.dropStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		var n int
		if err := admin.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !exists(young) {
		t.Errorf("the database created a moment ago was dropped (dropped %v)", dropped)
	}
	if exists(old) {
		t.Errorf("the leftover %s was not dropped (dropped %v)", old, dropped)
	}
}
