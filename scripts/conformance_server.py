"""Serve the protocol suites' reference server, built from our engine, on 127.0.0.1:3000.

The official conformance suites (socketio/socket.io-protocol and
socketio/engine.io-protocol, folder `test-suite/`, mocha) test whatever listens on
localhost:3000. Start this, then run each suite from its own checkout:

    .venv/bin/python scripts/conformance_server.py &
    (cd <engine.io-protocol>/test-suite && npm ci && npm test)
    (cd <socket.io-protocol>/test-suite && npm ci && npm test)

What it serves is tests/support/conformance_server.py (the pytest conformance tests use
the same server on a random port). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests" / "support"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aiohttp import web  # noqa: E402
from conformance_server import conformance_app  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    web.run_app(conformance_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
