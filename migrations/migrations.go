// Package migrations holds Stagely's numbered SQL migrations and applies them with goose.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sql/*.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() (fs.FS, error) {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	return sub, nil
}

// Result describes what Up did.
type Result struct {
	// Applied lists the versions applied by this call; empty when the schema was current.
	Applied []int64
	// Version is the schema version after the call.
	Version int64
}

// Up applies every pending migration to db, each in its own transaction. It is safe to
// call concurrently from several processes: goose holds a PostgreSQL advisory lock.
func Up(ctx context.Context, db *sql.DB) (Result, error) {
	p, err := newProvider(db)
	if err != nil {
		return Result{}, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("apply migrations: %w", err)
	}
	var res Result
	for _, r := range results {
		res.Applied = append(res.Applied, r.Source.Version)
	}
	if res.Version, err = p.GetDBVersion(ctx); err != nil {
		return Result{}, fmt.Errorf("read schema version: %w", err)
	}
	return res, nil
}

// Latest returns the highest migration version embedded in this binary.
func Latest(db *sql.DB) (int64, error) {
	p, err := newProvider(db)
	if err != nil {
		return 0, err
	}
	sources := p.ListSources()
	if len(sources) == 0 {
		return 0, nil
	}
	return sources[len(sources)-1].Version, nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	migrationsFS, err := FS()
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrationsFS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}
