"""Every benchmark of the project, one command: a table, then one JSON object (last line).

    .venv/bin/python bench/run.py --quick        # under 3 minutes on a 2-core machine
    .venv/bin/python bench/run.py --toy          # seconds; the smoke test's size
    .venv/bin/python bench/run.py --quick --py-spy /path/to/py-spy --profile-out fan.txt

Runs crypto_bench, storage_bench, the pub/sub seal's cost (pubsub_seal.py, needs Redis)
and the ping wheel's timing (pings.py) in this process,
then starts the server itself (``run.py`` through `probed_run.py`, against a throwaway
database, on a free 127.0.0.1 port, TOKEN_COALESCE_MS=0, MAX_SOCKETS_PER_USER=1000),
drives it with real socket.io-client sockets in Node workers and with python-socketio
clients, and always stops it; last, a server of its own with event limits on times a
neighbour's pings while another socket floods (flood.py). Needs PostgreSQL
(tests/support/pg.py) and Node with socket.io-client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench import crypto_bench, pings, procstat, pubsub_seal, spyprofile, storage_bench
from bench.fanout import fanout, paced, wire_bytes
from bench.flood import flood_latency
from bench.flows import FlowConfig
from bench.idle import idle_memory
from bench.load import LoadOptions, run_load
from bench.nodeworkers import workers
from bench.server_proc import ServerProcess, started_server

__all__ = ["SIZES", "Size", "main", "run_all"]

SOCKET_PATH = "/api/socket"


@dataclass(frozen=True, slots=True)
class Size:
    """How big each benchmark runs."""

    quick: bool
    idle_sockets: int
    fanout_clients: int
    fanout_tokens: int
    paced_tokens: int
    wire_tokens: int
    first_clients: int
    first_rounds: int
    first_think_ms: float
    load_clients: int
    load_rounds: int
    python_clients: int
    load_model: str = "scripted:40:15"
    idle_settle_s: float = 2.0
    procs: int = 2
    flood_events: int = 2000


SIZES = {
    "toy": Size(
        True, 40, 8, 100, 20, 100, 4, 2, 20, 3, 1, 3, "scripted:10:5", 0.3, flood_events=200
    ),
    "quick": Size(True, 2000, 200, 1000, 150, 1000, 100, 3, 1000, 30, 3, 30),
    "full": Size(False, 2000, 200, 1000, 500, 1000, 100, 10, 1000, 100, 10, 100),
}


def _pick(figures: dict[str, Any], prefix: str, keys: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}_{key}": figures[key] for key in keys if key in figures}


_LOAD_KEYS = (
    "clients_ready",
    "rounds_done",
    "first_token_ms_p50",
    "first_token_ms_p99",
    "complete_ms_p50",
    "complete_ms_p99",
    "truncate_ms_p50",
    "truncate_ms_p99",
    "events_per_s",
    "tokens_per_s",
    "errors",
    "setup_errors",
    "harness_cpu_us_per_event",
    "server_cpu_us_per_event",
    "server_rss_peak_mib",
)


async def _first_token(server: ServerProcess, size: Size, run_id: str) -> dict[str, Any]:
    """send -> first ai-token over `first_clients` concurrent conversations (1 socket each).

    Steady: every client sends, reads the reply, pauses 0..2x think time, sends again
    (starts spread over one think time). Burst: all send at the same moment, once.
    """
    flow = FlowConfig(
        url=server.url,
        path=SOCKET_PATH,
        model="scripted:20:0",
        rounds=size.first_rounds,
        duration_s=120,
        edit=False,
        think_ms=size.first_think_ms,
        start_spread_ms=size.first_think_ms * 2,
        run_id=f"{run_id}f",
    )
    options = LoadOptions(
        flow=flow,
        clients=size.first_clients,
        procs=size.procs,
        server_pid=server.pid,
        progress=False,
    )
    steady = await run_load(options)
    burst = await run_load(
        replace(
            options,
            flow=replace(flow, rounds=1, think_ms=0, start_spread_ms=0, run_id=f"{run_id}b"),
        )
    )
    return {
        "first_token_p50_ms": steady["first_token_ms_p50"],
        "first_token_p99_ms": steady["first_token_ms_p99"],
        "first_token_n": steady["first_token_ms_n"],
        "first_token_errors": steady["errors"],
        "first_token_server_cpu_share": steady.get("server_cpu_share"),
        "first_token_burst_p50_ms": burst["first_token_ms_p50"],
        "first_token_burst_p99_ms": burst["first_token_ms_p99"],
        "first_token_burst_errors": burst["errors"],
    }


async def _load(server: ServerProcess, size: Size, run_id: str) -> dict[str, Any]:
    """The full flow (send, stream, edit, truncate, regenerate) with both drivers."""
    figures: dict[str, Any] = {}
    for driver, clients in (("node", size.load_clients), ("python", size.python_clients)):
        flow = FlowConfig(
            url=server.url,
            path=SOCKET_PATH,
            model=size.load_model,
            rounds=size.load_rounds,
            duration_s=60,
            run_id=f"{run_id}{driver[0]}",
        )
        result = await run_load(
            LoadOptions(
                flow=flow,
                clients=clients,
                driver=driver,
                procs=size.procs,
                server_pid=server.pid,
                progress=False,
            )
        )
        figures |= _pick(result, f"load_{driver}", _LOAD_KEYS)
    return figures


class _Phases:
    """Wall time of each phase, reported as `phase_s` (where the run's time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now


async def _server_benchmarks(
    size: Size, py_spy: str | None, profile_out: Path | None, phases: _Phases
) -> dict[str, Any]:
    procstat.raise_nofile_limit()
    run_id = secrets.token_hex(3)
    figures: dict[str, Any] = {}
    async with (
        started_server(emit_probe=True) as server,
        aiohttp.ClientSession() as http,
        workers(size.procs) as pool,
    ):
        phases.done("server_start")
        started = procstat.sample(server.pid)
        figures["server_rss_start_mib"] = round(started.rss_kib / 1024, 1)
        figures |= await idle_memory(
            pool,
            http,
            url=server.url,
            path=SOCKET_PATH,
            server_pid=server.pid,
            sockets=size.idle_sockets,
            settle_s=size.idle_settle_s,
        )
        phases.done("idle")
        raw = profile_out or Path("/dev/null")
        fan, account, room = await fanout(
            pool,
            http,
            url=server.url,
            path=SOCKET_PATH,
            server_pid=server.pid,
            clients=size.fanout_clients,
            tokens=size.fanout_tokens,
            around_stream=lambda: spyprofile.recording(py_spy, server.pid, raw),
        )
        figures |= fan
        phases.done("fanout")
        figures |= await paced(
            pool,
            http,
            room,
            account,
            url=server.url,
            server_pid=server.pid,
            emit_log=server.emit_log,
            tokens=size.paced_tokens,
        )
        for worker in room.workers:
            await worker.ask("close", "closed", 60, group=room.group)
        phases.done("paced")
        figures |= await wire_bytes(
            pool,
            http,
            account,
            url=server.url,
            path=SOCKET_PATH,
            server_pid=server.pid,
            tokens=size.wire_tokens,
        )
        phases.done("wire_bytes")
        figures |= await _first_token(server, size, run_id)
        phases.done("first_token")
        figures |= await _load(server, size, run_id)
        phases.done("load")
        figures["server_rss_peak_mib"] = round(procstat.sample(server.pid).hwm_kib / 1024, 1)
    return figures


def host_busy_now(window_s: float = 2.0) -> float:
    """Share of all cores busy over the next `window_s` seconds."""
    before = procstat.host_sample()
    time.sleep(window_s)
    return procstat.host_sample().busy_share_since(before)


def wait_until_quiet(max_wait_s: float, threshold: float = 0.2) -> float:
    """Wait (at most `max_wait_s`) for the machine to be mostly idle; returns its busy share.

    Other processes on the machine take CPU from the server and the clients and move every
    figure; the share is reported so a disturbed run can be recognised.
    """
    deadline = time.monotonic() + max_wait_s
    busy = host_busy_now()
    while busy > threshold and time.monotonic() < deadline:
        busy = host_busy_now()
    return busy


def run_all(
    size: Size,
    py_spy: str | None = None,
    profile_out: Path | None = None,
    wait_quiet_s: float = 0.0,
) -> dict[str, Any]:
    """Every benchmark at `size`; returns the figures (the keys of the printed JSON)."""
    figures: dict[str, Any] = {"host_busy_before": round(wait_until_quiet(wait_quiet_s), 3)}
    started = time.monotonic()
    phases = _Phases()
    figures |= crypto_bench.run(quick=size.quick)
    phases.done("crypto")
    figures |= storage_bench.run(quick=size.quick)
    phases.done("storage")
    figures |= pubsub_seal.run(quick=size.quick)
    phases.done("pubsub seal")
    figures |= pings.run(quick=size.quick)
    phases.done("pings")
    figures |= asyncio.run(_server_benchmarks(size, py_spy, profile_out, phases))
    figures |= asyncio.run(flood_latency(size.flood_events))
    phases.done("flood")
    figures["phase_s"] = phases.seconds
    figures["total_s"] = round(time.monotonic() - started, 1)
    return {key: _no_nan(value) for key, value in figures.items()}


def _no_nan(value: Any) -> Any:
    """NaN (no samples) becomes null, so the last line is strict JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


# (key, title, unit, target as (comparison, bound) or None)
_ROWS: tuple[tuple[str, str, str, tuple[str, float] | None], ...] = (
    ("host_busy_before", "machine busy before start (all cores)", "", None),
    ("pack_us", "pack, 300 chars", "us", ("<", 50)),
    ("unpack_us", "unpack, 300 chars", "us", ("<", 50)),
    ("append_ratio_10k_over_10", "append at 10,000 / at 10 messages", "x", ("<", 1.5)),
    ("edit_ms_10k", "edit message 1 of 10,000", "ms", ("<", 20)),
    ("argon2_dummy_over_real", "login check, unknown / known account", "x", None),
    ("bytes_per_message", "stored bytes per message", "B", None),
    ("pubsub_ai_token_sealed_ratio", "pub/sub path CPU, sealed / clear (ai-token)", "x", None),
    ("pubsub_message_added_sealed_ratio", "pub/sub path CPU, sealed / clear (message)", "x", None),
    ("fanout_events_per_s", "fan-out, events delivered per second", "/s", None),
    ("fanout_server_us_per_event", "fan-out, server CPU per event", "us", ("<=", 12)),
    ("fanout_interrupt_cpu_s", "fan-out, CPU in interrupts (loopback TCP)", "s", None),
    ("fanout_other_cpu_s", "fan-out, CPU of other processes", "s", None),
    ("paced_p99_ms", "paced 50 tok/s, emit -> receipt p99", "ms", ("<=", 9)),
    ("paced_spread_p99_ms", "paced, receipt - first receipt p99", "ms", None),
    ("paced_complete_p99_ms", "paced, ai-complete stamp -> receipt p99", "ms", None),
    ("paced_other_cpu_s", "paced, CPU of other processes", "s", None),
    ("first_token_p99_ms", "send -> first ai-token p99 (steady)", "ms", ("<", 25)),
    ("first_token_burst_p99_ms", "send -> first ai-token p99 (burst)", "ms", None),
    ("idle_kib_per_socket", "memory per idle websocket", "KiB", ("<", 28)),
    ("ping_wheel_late_ms_p99", "ping wheel, ping past its interval p99", "ms", ("<=", 500)),
    ("flood_baseline_rtt_ms_p50", "neighbour's ping round trip, no flood p50", "ms", None),
    ("flood_neighbour_rtt_ms_p50", "neighbour's ping round trip, flood p50", "ms", ("<", 250)),
    ("flood_neighbour_rtt_ms_p99", "neighbour's ping round trip, flood p99", "ms", None),
    ("partial_bytes_per_reply", "bytes per reply, with partial", "B", None),
    ("delta_bytes_per_reply", "bytes per reply, deltas only", "B", None),
    ("load_node_complete_ms_p99", "load (node): send -> ai-complete p99", "ms", None),
    ("load_node_truncate_ms_p99", "load (node): edit -> truncated p99", "ms", None),
    ("load_node_harness_cpu_us_per_event", "load (node): client CPU per event", "us", None),
    ("load_python_harness_cpu_us_per_event", "load (python): client CPU per event", "us", None),
)


def _verdict(value: Any, target: tuple[str, float] | None) -> str:
    if target is None or not isinstance(value, int | float) or math.isnan(value):
        return ""
    op, bound = target
    ok = value < bound if op == "<" else value <= bound
    return f"{op} {bound:g}  {'ok' if ok else 'MISS'}"


def print_table(figures: dict[str, Any]) -> None:
    """The human-readable table of the headline figures, with targets."""
    width = max(len(title) for _, title, _, _ in _ROWS)
    print(f"{'benchmark':<{width}}  {'value':>12}  unit  target")
    for key, title, unit, target in _ROWS:
        value = figures.get(key)
        shown = f"{value:>12,.2f}" if isinstance(value, int | float) else f"{value!s:>12}"
        print(f"{title:<{width}}  {shown}  {unit:<4}  {_verdict(value, target)}")
    print(f"total {figures.get('total_s')} s")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description="Run every benchmark of the project.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="size",
        help="under 3 minutes on a 2-core machine (the default)",
    )
    group.add_argument(
        "--toy",
        action="store_const",
        const="toy",
        dest="size",
        help="tiny sizes, seconds (smoke test)",
    )
    group.add_argument(
        "--full", action="store_const", const="full", dest="size", help="more samples"
    )
    parser.add_argument("--py-spy", help="path to py-spy: profile the server during fan-out")
    parser.add_argument("--profile-out", type=Path, help="raw py-spy output file")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the machine to be idle",
    )
    args = parser.parse_args(argv)
    size = SIZES[args.size or "quick"]
    profile_out = args.profile_out or (Path("fanout-profile.txt") if args.py_spy else None)
    figures = run_all(size, args.py_spy, profile_out, args.wait_quiet)
    print_table(figures)
    if args.py_spy and profile_out is not None and profile_out.exists():
        print(f"server profile during fan-out ({profile_out}): self %, total %")
        for name, own, total in spyprofile.top_functions(profile_out, 25):
            print(f"  {own:5.1f} {total:5.1f}  {name}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
