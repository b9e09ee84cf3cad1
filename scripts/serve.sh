#!/usr/bin/env bash
# The VTT app in production: gunicorn on the app factory, PostgreSQL through DATABASE_URL.
#   make serve                         # PostgreSQL started here (database "vtt"), port 8000
#   DATABASE_URL=postgresql+psycopg://... BIND=0.0.0.0:8000 make serve
# WORKERS x THREADS requests run at once (default 4 x 8 on this 2-core machine; about two
# workers per core); each worker keeps THREADS database connections (VTT_DB_POOL_SIZE) and
# opens as many again under a burst, so PostgreSQL needs WORKERS x THREADS x 2 connections
# at most (64 by default; its default max_connections is 100). Put it behind a TLS proxy
# (nginx, Caddy) that sets X-Forwarded-Proto; cookies are then marked Secure. Connections are
# kept alive for KEEP_ALIVE seconds (75, nginx's default) so that a rater's calls reuse one
# (gunicorn's default of 2 s would close it during every trial's 3 s on screen).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-4}
THREADS=${THREADS:-8}
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
