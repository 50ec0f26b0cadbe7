#!/usr/bin/env bash
# The whole suite: lint (ruff), types (mypy --strict), then pytest.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and Redis on
# 127.0.0.1:6379, or TEST_DATABASE_URL / TEST_REDIS_URL; and Node.js 18+.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test

.venv/bin/python - <<'PY'
import os, socket, sys, urllib.parse
def reachable(url, default_port):
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 3).close()
        return True
    except OSError:
        return False
pg = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
rd = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
missing = []
if not reachable(pg, 5432):
    missing.append(f"PostgreSQL at {pg} (start it, e.g. `pg_ctlcluster 15 main start`, or set TEST_DATABASE_URL)")
if not reachable(rd, 6379):
    missing.append(f"Redis at {rd} (start it, e.g. `redis-server --daemonize yes`, or set TEST_REDIS_URL)")
if missing:
    print("The test suite needs:\n  " + "\n  ".join(missing), file=sys.stderr)
    sys.exit(1)
PY

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import contracts (pyproject.toml [tool.importlinter])"
contracts=$(.venv/bin/lint-imports --no-cache 2>&1) || { echo "$contracts"; exit 1; }
grep '^Contracts:' <<<"$contracts"
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
