#!/usr/bin/env bash
# Start PostgreSQL as the postgres image does: create the cluster on first
# start with the superuser POSTGRES_USER (default postgres) and password
# POSTGRES_PASSWORD, create POSTGRES_DB (default: the user name), then run the
# server in the foreground with this script's arguments appended.
set -euo pipefail

bin=/usr/local/lib/postgresql-bin
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
run_as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
  echo "portal-db: POSTGRES_PASSWORD is missing; set it in the service's environment" >&2
  exit 1
fi

mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "portal-db: creating a cluster in $PGDATA with superuser $user"
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  chown postgres "$password_file"
  run_as_postgres "$bin/initdb" --username="$user" --pwfile="$password_file" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  # Create the database through the Unix socket only, before clients can connect.
  run_as_postgres "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [[ "$database" != postgres ]]; then
    printf 'CREATE DATABASE "%s";\n' "${database//\"/\"\"}" |
      run_as_postgres "$bin/psql" -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q
  fi
  run_as_postgres "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi

echo "portal-db: starting PostgreSQL with arguments: $*"
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" "$@"
