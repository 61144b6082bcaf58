package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver
)

// demoDBPrefix names every database the demo creates, so a later run can find and drop them.
const demoDBPrefix = "stagely_demo_"

// adminDB is a superuser connection to the PostgreSQL cluster the demo creates its database in.
type adminDB struct {
	url string
	db  *sql.DB
}

func openAdmin(ctx context.Context, adminURL string) (*adminDB, error) {
	db, err := sql.Open("postgres", adminURL)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL does not answer at %s: %w (run scripts/ensure-postgres.sh, or `make demo`, which runs it)", redact(adminURL), err)
	}
	return &adminDB{url: adminURL, db: db}, nil
}

func (a *adminDB) Close() error { return a.db.Close() }

// staleAfter is how old a demo database must be before another run may drop it. A demo
// creates its database before its server connects to it; in between, nobody is connected,
// and a demo starting at that moment (another checkout on the same machine) must not take
// it for a leftover.
const staleAfter = 10 * time.Minute

// dropStale drops the demo databases of earlier runs that nobody is connected to; one that is
// in use (another demo running right now) or younger than staleAfter is left alone.
func (a *adminDB) dropStale(ctx context.Context) (dropped []string, err error) {
	rows, err := a.db.QueryContext(ctx, `
		SELECT datname FROM pg_database d
		WHERE datname LIKE $1 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`,
		demoDBPrefix+"%")
	if err != nil {
		return nil, fmt.Errorf("list old demo databases: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list old demo databases: %w", err)
		}
		// create names each database for the time it was made.
		if nanos, err := strconv.ParseInt(strings.TrimPrefix(n, demoDBPrefix), 10, 64); err == nil && time.Since(time.Unix(0, nanos)) < staleAfter {
			continue
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		// Without FORCE: a demo that connected since the query keeps its database.
		if _, err := a.db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(n)); err == nil {
			dropped = append(dropped, n)
		}
	}
	return dropped, nil
}

// create makes a new empty database; the server migrates it when it starts.
func (a *adminDB) create(ctx context.Context) (name, dsn string, err error) {
	name = fmt.Sprintf("%s%d", demoDBPrefix, time.Now().UnixNano())
	if _, err := a.db.ExecContext(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(a.url)
	if err != nil {
		return "", "", fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

// drop removes a demo database, closing whatever still holds it.
func (a *adminDB) drop(ctx context.Context, name string) error {
	if _, err := a.db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(name)+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// redact hides the password of a URL before it is printed.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
