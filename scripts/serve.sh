#!/usr/bin/env bash
# The VTT app in production: gunicorn on the app factory, PostgreSQL through DATABASE_URL.
#   make serve                         # PostgreSQL started here (database "vtt"), port 8000
#   DATABASE_URL=postgresql+psycopg://... BIND=0.0.0.0:8000 make serve
# WORKERS x THREADS requests run at once (default 6 x 6, measured on the 2-core development
# machine with 200 raters: answer p99 68-110 ms against 400-900 ms for 4 x 8 and 120-260 ms
# for 8 x 4; with many threads per process, a thread back from each database round trip
# waits for the process's GIL behind the others; 16 x 2 queued connections behind too few
# threads, p99 1.4 s). Each worker keeps THREADS database connections (VTT_DB_POOL_SIZE) and
# opens as many again under a burst, so PostgreSQL needs WORKERS x THREADS x 2 connections
# at most (72 by default; its default max_connections is 100). Put it behind a TLS proxy
# (nginx, Caddy) that sets X-Forwarded-Proto; cookies are then marked Secure. Connections are
# kept alive for KEEP_ALIVE seconds (75, nginx's default) so that a rater's calls reuse one
# (gunicorn's default of 2 s would close it during every trial's 3 s on screen).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-6}
THREADS=${THREADS:-6}
BIND=${BIND:-127.0.0.1:8000}
KEEP_ALIVE=${KEEP_ALIVE:-75}
if [[ -z ${DATABASE_URL:-} ]]; then
    DATABASE_URL=$(bash scripts/start_postgres.sh vtt)
fi
export DATABASE_URL VTT_DB_POOL_SIZE=${VTT_DB_POOL_SIZE:-$THREADS}
.venv/bin/flask --app vtt_app init-db >&2
exec .venv/bin/gunicorn --workers "$WORKERS" --threads "$THREADS" --bind "$BIND" --keep-alive "$KEEP_ALIVE" \
    --config scripts/gunicorn_conf.py \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" --access-logfile - \
    "vtt_app:create_app()"
