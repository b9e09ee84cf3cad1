#!/usr/bin/env bash
# Start a local PostgreSQL server with a database for the VTT app (default: the scratch
# database vtt_test of the tests; `start_postgres.sh vtt` for the production one of
# scripts/serve.sh). Idempotent; installs Debian's postgresql when missing. Prints the
# SQLAlchemy URL on stdout.
set -euo pipefail
SUDO=""
ASPG=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; ASPG=(sudo -u postgres); fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q --no-install-recommends postgresql >&2
fi
VER=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$VER main"; then
    $SUDO pg_createcluster "$VER" main >&2
fi
$SUDO pg_ctlcluster "$VER" main start >&2 2>/dev/null || true
for _ in $(seq 30); do
    "${ASPG[@]}" psql -qAtc "select 1" >/dev/null 2>&1 && break
    sleep 1
done
"${ASPG[@]}" psql -qAtc "select 1 from pg_roles where rolname='pixcolor'" | grep -q 1 \
    || "${ASPG[@]}" psql -qc "create role pixcolor login password 'pixcolor'" >&2
DB=${1:-vtt_test}
[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "bad database name $DB" >&2; exit 2; }
"${ASPG[@]}" psql -qAtc "select 1 from pg_database where datname='$DB'" | grep -q 1 \
    || "${ASPG[@]}" createdb -O pixcolor "$DB" >&2
echo "postgresql+psycopg://pixcolor:pixcolor@127.0.0.1:5432/$DB"
