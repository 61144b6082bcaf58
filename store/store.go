// Package store is Stagely's PostgreSQL access layer: one file per table, sqlx + lib/pq,
// explicit transactions where several rows change together.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ErrNotFound is matched (errors.Is) by every "no such row" error; the error text names what was missing.
var ErrNotFound = errors.New("not found")

// ErrConflict is matched by errors caused by a uniqueness rule.
var ErrConflict = errors.New("already exists")

// ErrInvalid is matched by errors caused by a CHECK or foreign-key rule.
var ErrInvalid = errors.New("invalid")

// NotFoundError names the thing that was not found.
type NotFoundError struct {
	What string
	Key  string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %s not found", e.What, e.Key) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(what string, key any) error {
	return &NotFoundError{What: what, Key: fmt.Sprint(key)}
}

// ConstraintError reports which database rule a write broke.
type ConstraintError struct {
	Kind       error // ErrConflict or ErrInvalid
	Constraint string
	Message    string
}

func (e *ConstraintError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Kind, e.Message, e.Constraint)
}

// Is makes errors.Is match the error's kind.
func (e *ConstraintError) Is(target error) bool { return target == e.Kind }

// queryer is what both *sqlx.DB and *sqlx.Tx offer; repositories run on either.
type queryer interface {
	sqlx.ExtContext
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// Store is the entry point to every table.
type Store struct {
	db *sqlx.DB
	q  queryer
}

// Open connects to PostgreSQL and checks the connection.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("reach database: %w", err)
	}
	return &Store{db: db, q: db}, nil
}

// New wraps an open connection pool.
func New(db *sqlx.DB) *Store { return &Store{db: db, q: db} }

// DB returns the underlying pool (for migrations and health checks).
func (s *Store) DB() *sql.DB { return s.db.DB }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// InTx runs fn in one transaction: committed if fn returns nil, rolled back otherwise.
// The *Store handed to fn runs every call inside that transaction.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	if _, nested := s.q.(*sqlx.Tx); nested {
		return fn(s)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(&Store{db: s.db, q: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", mapErr(err))
	}
	return nil
}

// mapErr turns PostgreSQL constraint violations into ConstraintErrors.
func mapErr(err error) error {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return err
	}
	switch pqErr.Code {
	case "23505": // unique_violation
		return &ConstraintError{Kind: ErrConflict, Constraint: pqErr.Constraint, Message: pqErr.Message}
	case "23503", "23514", "23502", "22P02", "23P01": // foreign key, check, not null, bad text repr, exclusion
		return &ConstraintError{Kind: ErrInvalid, Constraint: pqErr.Constraint, Message: pqErr.Message}
	}
	return err
}

// get runs a single-row query; no row becomes a NotFoundError naming what and key.
func (s *Store) get(ctx context.Context, dest any, what string, key any, query string, args ...any) error {
	err := s.q.GetContext(ctx, dest, query, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(what, key)
	}
	if err != nil {
		return fmt.Errorf("%s %v: %w", what, key, mapErr(err))
	}
	return nil
}

// getAs is get into a fresh T, for the many methods that return one row.
func getAs[T any](ctx context.Context, s *Store, what string, key any, query string, args ...any) (T, error) {
	var out T
	err := s.get(ctx, &out, what, key, query, args...)
	return out, err
}

// selectAs runs a query of any number of rows into a []T.
func selectAs[T any](ctx context.Context, s *Store, query string, args ...any) ([]T, error) {
	var out []T
	err := s.q.SelectContext(ctx, &out, query, args...)
	return out, mapErr(err)
}

// execOne runs a statement that must touch exactly one row.
func (s *Store) execOne(ctx context.Context, what string, key any, query string, args ...any) error {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s %v: %w", what, key, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %v: %w", what, key, err)
	}
	if n == 0 {
		return notFound(what, key)
	}
	return nil
}

// IsNotFound reports whether err means a row was missing.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
