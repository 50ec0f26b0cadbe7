"""How late the ping wheel sends a ping, past the interval it was scheduled for.

`server/realtime/engine/ping_wheel.py` keeps sockets in the order they fall due and one
loop timer for the earliest, sharing an entry among sockets due within a millisecond:
a ping leaves up to a millisecond after its interval, plus whatever the event loop adds
(the quarter-second wheel before it: up to 500 ms). Here sockets (stand-in objects) are
scheduled in batches spread over one interval, in this process's own loop, and each
ping's lateness is recorded. tests/server/test_server_heartbeats.py only asserts
what cannot depend on the machine's load (once each, never early).

    .venv/bin/python bench/pings.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import summary
from server.realtime.engine.ping_wheel import PingWheel

__all__ = ["measure", "run"]


async def measure(sockets: int, interval_s: float, batches: int = 40) -> dict[str, Any]:
    """Schedule `sockets` in `batches` spread over one interval; lateness of every ping."""
    due: dict[int, float] = {}
    late_ms: list[float] = []
    all_pinged = asyncio.Event()

    def ping(sock: Any) -> None:
        late_ms.append((time.monotonic() - due.pop(id(sock))) * 1000)
        if not due:
            all_pinged.set()

    wheel = PingWheel(interval_s, ping)
    kept: list[object] = []
    per_batch = max(1, sockets // batches)
    try:
        for _ in range(batches):
            for _ in range(per_batch):
                sock = object()
                kept.append(sock)
                due[id(sock)] = time.monotonic() + interval_s
                wheel.schedule(sock)  # type: ignore[arg-type]
            await asyncio.sleep(interval_s / batches)
        with contextlib.suppress(TimeoutError):  # what never came is `ping_wheel_lost`
            await asyncio.wait_for(all_pinged.wait(), interval_s + 30)
    finally:
        await wheel.stop()
    figures: dict[str, Any] = summary(late_ms, "ping_wheel_late_ms", digits=1)
    figures["ping_wheel_min_late_ms"] = round(min(late_ms), 3) if late_ms else None
    figures["ping_wheel_lost"] = len(due)
    figures["ping_wheel_interval_s"] = interval_s
    return figures


def run(quick: bool) -> dict[str, Any]:
    """The figures, at a size that takes about two seconds (quick) or four."""
    sockets, interval = (2_000, 0.5) if quick else (10_000, 1.0)
    return asyncio.run(measure(sockets, interval))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: a line per figure, then the JSON figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer sockets, shorter interval")
    figures = run(quick=parser.parse_args(argv).quick)
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
