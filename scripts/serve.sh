#!/usr/bin/env bash
# Runs the server. Without DATABASE_URL it starts an embedded PostgreSQL in ./.data;
# without REDIS_URL it runs as a single instance. See README "Configuration".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python run.py "$@"
