#!/usr/bin/env bash
# Makes a local PostgreSQL cluster answer on 127.0.0.1:5432 with the password the tests and the
# demo use (DESIGN.md §8): installs Debian's server when missing, creates and starts the cluster,
# and sets the postgres role's password. Prints nothing on success but one "ready" line.
set -euo pipefail

PGVER=${PGVER:-15}
PGPASSWORD_WANTED=${STAGELY_PG_PASSWORD:-stagely}
log() { printf 'ensure-postgres: %s\n' "$*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x "/usr/lib/postgresql/$PGVER/bin/postgres" ]; then
	log "installing postgresql-$PGVER"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PGVER" >/dev/null
fi
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$PGVER main"; then
	log "creating cluster $PGVER/main"
	pg_createcluster "$PGVER" main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1=="'"$PGVER"'" && $2=="main" {print $4}' | grep -qx online; then
	log "starting cluster $PGVER/main"
	pg_ctlcluster "$PGVER" main start
fi
for _ in $(seq 1 40); do
	su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
	sleep 0.25
done
# Many test databases are created in parallel; the default of 100 connections is tight for that.
current=$(su postgres -c "psql -qAtc 'show max_connections'")
if [ "$current" -lt 300 ]; then
	su postgres -c "psql -qAtc \"alter system set max_connections = 300\"" >/dev/null
	pg_ctlcluster "$PGVER" main restart
	for _ in $(seq 1 40); do
		su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
		sleep 0.25
	done
fi
su postgres -c "psql -qAtc \"alter role postgres password '$PGPASSWORD_WANTED'\"" >/dev/null
log "ready: postgres://postgres:***@127.0.0.1:5432/postgres"
