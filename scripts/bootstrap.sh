#!/usr/bin/env bash
# Creates .venv and installs the project (and, with --test, the Node test client).
# Idempotent: re-installs only when pyproject.toml or the Node lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  # pip's warnings (package folders this machine's configuration names, build-backend
  # notices) are nothing a new user needs to read: shown only when pip fails.
  quiet_pip() {
    local log
    log=$(mktemp)
    if ! .venv/bin/python -m pip "$@" 2>"$log"; then
      cat "$log" >&2
      rm -f "$log"
      return 1
    fi
    rm -f "$log"
  }
  echo "installing the server's dependencies into .venv (first run, or pyproject.toml changed)" >&2
  quiet_pip install --quiet --disable-pip-version-check --upgrade pip
  quiet_pip install --quiet --disable-pip-version-check -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if [[ "${1:-}" == "--test" ]]; then
  if ! command -v node >/dev/null; then
    echo "Node.js 18+ is required for the socket.io-client compatibility tests" >&2
    exit 1
  fi
  node_stamp="tests/node/node_modules/.installed-$(sha256sum tests/node/package-lock.json | cut -c1-16)"
  if [[ ! -f "$node_stamp" ]]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    touch "$node_stamp"
  fi
  # nginx, the load balancer of the deployment tests (tests/deploy). Installed from
  # Debian's packages only when missing and when we may (root with apt-get).
  if ! command -v nginx >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq nginx-light >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && apt-get install -y -qq nginx-light >/dev/null 2>&1; } \
        || echo "could not install nginx-light; tests/deploy needs nginx" >&2
    else
      echo "tests/deploy needs nginx (Debian: apt-get install nginx-light)" >&2
    fi
  fi
fi
