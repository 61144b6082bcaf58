// Package storetest gives each test its own PostgreSQL database, cloned from a template
// that is migrated once per schema version (the coder dbtestutil approach).
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"testing"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
)

// EnvAdminURL names the variable holding a superuser URL of the test cluster.
const EnvAdminURL = "STAGELY_TEST_DATABASE_URL"

// DefaultAdminURL is the cluster scripts/ensure-postgres.sh sets up.
const DefaultAdminURL = "postgres://postgres:stagely@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockID serialises template creation across test processes.
const templateLockID = 0x5354474c // "STGL"

// AdminURL returns the cluster URL tests use.
func AdminURL() string {
	if v := os.Getenv(EnvAdminURL); v != "" {
		return v
	}
	return DefaultAdminURL
}

// NewDatabase creates an empty, fully migrated database for this test and returns its URL.
// It is dropped when the test ends. A cluster that does not answer fails the test with a
// message saying how to start one; it is never skipped.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := sql.Open("postgres", AdminURL())
	if err != nil {
		t.Fatalf("storetest: open admin connection: %v", err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("storetest: PostgreSQL does not answer at %s: %v\n(run scripts/ensure-postgres.sh, or `make test`, which runs it)", redactURL(AdminURL()), err)
	}

	tpl, err := ensureTemplate(ctx, admin)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	name := "stagely_test_" + randomSuffix(t)
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tpl)); err != nil {
		t.Fatalf("storetest: create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := sql.Open("postgres", AdminURL())
		if err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
		}
	})
	return withDatabase(AdminURL(), name)
}

// NewStore returns a Store on a fresh database of its own, closed when the test ends.
func NewStore(t testing.TB) *store.Store {
	t.Helper()
	return Open(t, NewDatabase(t))
}

// Open returns a Store on the database at dsn (one NewDatabase made), closed when the test ends.
func Open(t testing.TB, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// NewEmptyDatabase creates a database with no schema at all (for migration tests) and returns its URL.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := sql.Open("postgres", AdminURL())
	if err != nil {
		t.Fatalf("storetest: open admin connection: %v", err)
	}
	defer admin.Close()
	name := "stagely_empty_" + randomSuffix(t)
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s`, name)); err != nil {
		t.Fatalf("storetest: create empty database (is PostgreSQL running? run scripts/ensure-postgres.sh): %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("postgres", AdminURL())
		if err != nil {
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
		}
	})
	return withDatabase(AdminURL(), name)
}

// ensureTemplate returns the name of a migrated template database for the migrations in
// this binary, creating it under an advisory lock if no process has yet.
func ensureTemplate(ctx context.Context, admin *sql.DB) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	tpl := "stagely_tpl_" + hash
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, templateLockID); err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, templateLockID) //nolint:errcheck // released with the connection anyway

	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tpl).Scan(&exists); err != nil {
		return "", fmt.Errorf("template lookup: %w", err)
	}
	if exists {
		return tpl, nil
	}
	// Build under a temporary name and rename at the end, so a crash mid-way never leaves a
	// half-migrated template behind under the real name.
	building := tpl + "_building"
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building)); err != nil {
		return "", fmt.Errorf("template cleanup: %w", err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", fmt.Errorf("template create: %w", err)
	}
	db, err := sql.Open("postgres", withDatabase(AdminURL(), building))
	if err != nil {
		return "", fmt.Errorf("template open: %w", err)
	}
	_, migErr := migrations.Up(ctx, db)
	_ = db.Close()
	if migErr != nil {
		return "", fmt.Errorf("template migrate: %w", migErr)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, tpl)); err != nil {
		return "", fmt.Errorf("template rename: %w", err)
	}
	return tpl, nil
}

func migrationsHash() (string, error) {
	mfs, err := migrations.FS()
	if err != nil {
		return "", err
	}
	names, err := fs.Glob(mfs, "*.sql")
	if err != nil {
		return "", fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(mfs, n)
		if err != nil {
			return "", fmt.Errorf("read migration %s: %w", n, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + name
	return u.String()
}

func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
