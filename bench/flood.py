"""A flooding socket and its neighbour: the neighbour's ping round trip before and during.

One server of its own (the load benchmarks' server has every rate limit lifted) with
RATE_EVENTS_PER_MIN at half the flood, so half the flood is answered and half refused
as RATE_LIMITED. The flooder runs in a child process (python-socketio), so its thousands
of acks do not share the event loop that times the neighbour; the neighbour pings one
after another, first alone, then for as long as the flood lasts. tests/server/
test_server_hostile.py only asserts what cannot depend on the machine's load (the
neighbour is answered, the flooder refused and cut off); the latency is this figure.

    .venv/bin/python bench/flood.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import socketio

from bench import rest
from bench.server_proc import started_server
from bench.stats import percentile, summary

__all__ = ["flood_latency"]

SOCKET_PATH = "/api/socket"
_SELF = Path(__file__).resolve()
_BASELINE_SAMPLES = 20


async def _socket(url: str, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    await sio.connect(
        url,
        auth={"token": token},
        transports=["websocket"],
        socketio_path=SOCKET_PATH,
        wait_timeout=30,
    )
    return sio


async def _rtt_ms(sio: socketio.AsyncClient) -> float:
    start = time.perf_counter()
    ack = await sio.call("ping", timeout=30)
    elapsed = (time.perf_counter() - start) * 1000
    if not (isinstance(ack, dict) and ack.get("success")):
        raise RuntimeError(f"the neighbour's ping was refused: {ack!r}")
    return elapsed


async def _flooder(url: str, token: str, events: int) -> None:
    """The child process: connect, say `ready`, flood on `go`, print what came back."""
    sio = await _socket(url, token)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(sio.call("ping", timeout=60) for _ in range(events)), return_exceptions=True
    )
    seconds = time.perf_counter() - start
    acks = [r for r in results if isinstance(r, dict)]
    report = {
        "answered": sum(1 for a in acks if a.get("success")),
        "refused": sum(1 for a in acks if a.get("code") == "RATE_LIMITED"),
        "unanswered": len(results) - len(acks),
        "seconds": round(seconds, 3),
    }
    print(json.dumps(report), flush=True)
    await sio.disconnect()


async def flood_latency(events: int) -> dict[str, Any]:
    """`flood_*` figures: the neighbour's round trip alone and while `events` arrive."""
    limits = {"RATE_EVENTS_PER_MIN": str(events // 2), "FLOOD_DISCONNECT_AFTER": str(events)}
    # The neighbour's own pings count against the same per-user limit.
    budget = max(1, events // 2 - _BASELINE_SAMPLES - 5)
    async with started_server(limits) as server, aiohttp.ClientSession() as http:
        good, bad = [
            await rest.register(http, server.url, rest.new_email("flood", i)) for i in (0, 1)
        ]
        neighbour = await _socket(server.url, good.token)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(_SELF),
            "--flooder",
            server.url,
            bad.token,
            str(events),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            if (await asyncio.wait_for(child.stdout.readline(), 60)).strip() != b"ready":
                raise RuntimeError("the flooder did not connect")
            baseline = [await _rtt_ms(neighbour) for _ in range(_BASELINE_SAMPLES)]
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            report_line = asyncio.ensure_future(child.stdout.readline())
            during: list[float] = []
            while not report_line.done() and len(during) < budget:
                during.append(await _rtt_ms(neighbour))
            report = json.loads(await asyncio.wait_for(report_line, 120))
            await asyncio.wait_for(child.wait(), 30)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await neighbour.disconnect()
    p50 = percentile(during, 50)
    base_p50 = percentile(baseline, 50)
    figures: dict[str, Any] = {
        "flood_events": events,
        "flood_answered": report["answered"],
        "flood_refused": report["refused"],
        "flood_unanswered": report["unanswered"],
        "flood_seconds": report["seconds"],
        "flood_baseline_rtt_ms_p50": round(base_p50, 3),
        "flood_rtt_ratio_p50": round(p50 / base_p50, 1) if base_p50 > 0 else math.nan,
    }
    figures |= summary(during, "flood_neighbour_rtt_ms")
    return figures


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: a line per figure, then the JSON figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events in the flood")
    parser.add_argument(
        "--flooder", nargs=3, metavar=("URL", "TOKEN", "EVENTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.flooder:
        url, token, events = args.flooder
        asyncio.run(_flooder(url, token, int(events)))
        return
    figures = asyncio.run(flood_latency(args.events))
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
