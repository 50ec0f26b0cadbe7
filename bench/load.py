"""Load generator: N concurrent clients through the real protocol against any server.

Each client registers over REST (or logs in when the address exists), creates a
conversation, connects a socket with `auth.token`, joins, then runs rounds: send, read the
whole reply to `ai-complete`, edit message 1 and wait for `conversation-truncated` and the
regenerated reply. Set-up happens first for every client; the measured phase starts
when all are ready and stops after `--rounds` rounds per client or `--duration` seconds
(a hard stop: unfinished rounds are abandoned).

    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --clients 50 --rounds 5 \\
        --model scripted:40:15 --driver node --server-pid 12345

Prints p50/p95/p99 of send -> first ai-token, send -> ai-complete and edit ->
conversation-truncated (ms, measured by the client), events and ai-tokens delivered per
second, errors by code, the harness's own CPU and, with `--server-pid` (same machine),
the server's CPU seconds and peak RSS (/proc VmHWM). The last line is one JSON object.

Drivers: `node` runs socket.io-client 4.x in `--procs` Node processes
(bench/node/worker.mjs); `python` runs python-socketio AsyncClients in this process.

The server's own limits apply: a stock server refuses more than MAX_SOCKETS_PER_USER
sockets per user and rate-limits sends, edits, joins and connections per IP (RATE_*
variables); raise them on the server under test, or expect RATE_LIMITED in the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procstat, rest
from bench.flows import FlowConfig, FlowStats
from bench.nodeworkers import NodeWorker, WorkerError, split, workers
from bench.pyclients import run_python_flows
from bench.stats import summary

__all__ = ["LoadOptions", "Progress", "main", "print_table", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    flow: FlowConfig
    clients: int = 10
    driver: str = "node"
    procs: int = 1
    server_pid: int | None = None
    progress: bool = True
    password: str = rest.PASSWORD
    setup_timeout_s: float = 300.0


class Progress:
    """A one-line text progress bar on stderr (redrawn in place on a terminal)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self._total = max(total, 1)
        self._enabled = enabled
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._last = 0.0
        self._width = 30

    def update(self, done: int, errors: int, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.1 if self._tty else 2.0):
            return
        self._last = now
        filled = min(self._width, self._width * done // self._total)
        bar = "#" * filled + "-" * (self._width - filled)
        line = f"[{bar}] {done}/{self._total} rounds  {now - self._started:6.1f} s  errors {errors}"
        self._stream.write(("\r" + line) if self._tty else (line + "\n"))
        self._stream.flush()

    def finish(self, done: int, errors: int) -> None:
        self.update(done, errors, force=True)
        if self._enabled and self._tty:
            self._stream.write("\n")
            self._stream.flush()


@dataclass
class _Measured:
    stats: FlowStats
    ready: int
    setup_s: float
    measured_s: float
    stopped: bool
    harness_cpu_s: float
    host_busy: float
    host_interrupt_s: float
    server_before: procstat.ProcSample | None = None
    server_after: procstat.ProcSample | None = None


def _users(options: LoadOptions) -> list[tuple[str, str]]:
    run_id = options.flow.run_id
    return [(rest.new_email(run_id, i), options.password) for i in range(options.clients)]


def _server_sample(pid: int | None) -> procstat.ProcSample | None:
    return procstat.sample(pid) if pid is not None else None


async def _node_measure(options: LoadOptions, progress: Progress) -> _Measured:
    users = _users(options)
    procs = max(1, min(options.procs, options.clients))
    async with workers(procs) as pool:
        shares = split(len(users), procs)
        rounds = [0] * procs
        errors = [0] * procs

        def tracker(index: int) -> Any:
            def on_progress(message: dict[str, Any]) -> None:
                rounds[index], errors[index] = int(message["rounds"]), int(message["errors"])
                progress.update(sum(rounds), sum(errors))

            return on_progress

        start = 0
        setups = []
        for worker, share in zip(pool, shares, strict=True):
            worker.on_progress = tracker(worker.index)
            chunk = [{"email": e, "password": p} for e, p in users[start : start + share]]
            start += share
            setups.append(
                worker.ask("flows", "setup", options.setup_timeout_s, **options.flow.to_node(chunk))
            )
        setup_reports = await asyncio.gather(*setups)
        setup_s = max(float(r["seconds"]) for r in setup_reports)
        before = _server_sample(options.server_pid)
        host_before = procstat.host_sample()
        cpu_before = procstat.self_cpu_seconds() + sum(w.cpu_seconds() for w in pool)
        for worker in pool:
            await worker.command("go")
        reports = await asyncio.gather(*(_flows_report(w, options.flow.duration_s) for w in pool))
        after = _server_sample(options.server_pid)
        host_after = procstat.host_sample()
        cpu_after = procstat.self_cpu_seconds() + sum(w.cpu_seconds() for w in pool)
    stats = FlowStats()
    for report in reports:
        stats.merge(FlowStats.from_node(report))
    started = min(float(r["startedAt"]) for r in reports)
    ended = max(float(r["endedAt"]) for r in reports)
    return _Measured(
        stats=stats,
        ready=sum(int(r["ready"]) for r in setup_reports),
        setup_s=setup_s,
        measured_s=(ended - started) / 1000,
        stopped=any(bool(r["stopped"]) for r in reports),
        harness_cpu_s=cpu_after - cpu_before,
        host_busy=host_after.busy_share_since(host_before),
        host_interrupt_s=host_after.interrupt_seconds_since(host_before),
        server_before=before,
        server_after=after,
    )


async def _flows_report(worker: NodeWorker, duration_s: float) -> dict[str, Any]:
    """The worker's report; it stops itself at the duration, this only guards against hangs."""
    try:
        return await worker.expect("flows", duration_s + 30)
    except WorkerError:
        await worker.command("stop")
        return await worker.expect("flows", 10)


async def _python_measure(options: LoadOptions, progress: Progress) -> _Measured:
    # Set-up is excluded from the CPU figures: both are sampled when the rounds start.
    sampler = _StartSampler(options.server_pid)
    run = await run_python_flows(
        options.flow, _users(options), on_progress=progress.update, on_start=sampler.take
    )
    after = _server_sample(options.server_pid)
    host_after = procstat.host_sample()
    return _Measured(
        host_busy=host_after.busy_share_since(sampler.host),
        host_interrupt_s=host_after.interrupt_seconds_since(sampler.host),
        stats=run.stats,
        ready=run.ready,
        setup_s=run.setup_s,
        measured_s=run.measured_s,
        stopped=run.stopped,
        harness_cpu_s=procstat.self_cpu_seconds() - sampler.cpu,
        server_before=sampler.server,
        server_after=after,
    )


class _StartSampler:
    """Samples the server and this process when the measured phase starts."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self.server: procstat.ProcSample | None = None
        self.cpu = 0.0
        self.host = procstat.host_sample()

    def take(self) -> None:
        self.server = _server_sample(self._pid)
        self.cpu = procstat.self_cpu_seconds()
        self.host = procstat.host_sample()


def _figures(options: LoadOptions, m: _Measured) -> dict[str, Any]:
    s = m.stats
    seconds = m.measured_s if m.measured_s > 0 else math.nan
    figures: dict[str, Any] = {
        "driver": options.driver,
        "clients": options.clients,
        "clients_ready": m.ready,
        "rounds_planned": options.clients * options.flow.rounds,
        "rounds_done": s.rounds,
        "setup_s": round(m.setup_s, 3),
        "measured_s": round(m.measured_s, 3),
        "stopped_by_duration": m.stopped,
    }
    figures |= summary(s.first_token, "first_token_ms")
    figures |= summary(s.complete, "complete_ms")
    figures |= summary(s.truncate, "truncate_ms")
    figures |= {
        "events": s.events,
        "tokens": s.tokens,
        "events_per_s": round(s.events / seconds, 1),
        "tokens_per_s": round(s.tokens / seconds, 1),
        "errors": dict(Counter(s.errors).most_common()),
        "setup_errors": dict(Counter(s.setup_errors).most_common()),
        "harness_cpu_s": round(m.harness_cpu_s, 3),
        "harness_cpu_us_per_event": _per_event(m.harness_cpu_s, s.events),
        "harness_cpu_share": round(m.harness_cpu_s / seconds, 3),
        "host_cpu_busy": round(m.host_busy, 3),
    }
    if m.server_before is not None and m.server_after is not None:
        cpu = m.server_after.cpu_s - m.server_before.cpu_s
        figures |= {
            "server_cpu_s": round(cpu, 3),
            "server_cpu_us_per_event": _per_event(cpu, s.events),
            "server_cpu_share": round(cpu / seconds, 3),
            "server_rss_mib": round(m.server_after.rss_kib / 1024, 1),
            "server_rss_peak_mib": round(m.server_after.hwm_kib / 1024, 1),
            # Cores busy outside the server and the harness: PostgreSQL, and anything else
            # running on the machine (a sign the figures were disturbed).
            "interrupt_cpu_cores": round(m.host_interrupt_s / seconds, 2),
            "other_cpu_cores": round(
                m.host_busy * (os.cpu_count() or 1)
                - (cpu + m.harness_cpu_s + m.host_interrupt_s) / seconds,
                2,
            ),
        }
    return figures


def _per_event(cpu_s: float, events: int) -> float:
    return round(cpu_s / events * 1e6, 2) if events else math.nan


async def run_load(options: LoadOptions, run_id: str | None = None) -> dict[str, Any]:
    """Run the load test; returns the figures (the keys of the printed JSON)."""
    if run_id is not None:
        options = replace(options, flow=replace(options.flow, run_id=run_id))
    procstat.raise_nofile_limit()
    progress = Progress(options.clients * options.flow.rounds, options.progress)
    if options.driver == "node":
        measured = await _node_measure(options, progress)
    elif options.driver == "python":
        measured = await _python_measure(options, progress)
    else:
        raise ValueError(f"unknown driver {options.driver!r} (node or python)")
    progress.finish(measured.stats.rounds, sum(measured.stats.errors.values()))
    return _figures(options, measured)


def print_table(figures: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    """The human-readable summary of `run_load`'s figures."""
    f = figures
    print(
        f"driver {f['driver']}: {f['clients_ready']}/{f['clients']} clients ready in"
        f" {f['setup_s']:.1f} s; {f['rounds_done']}/{f['rounds_planned']} rounds in"
        f" {f['measured_s']:.1f} s",
        file=stream,
    )
    print(f"{'latency (ms)':<34} {'p50':>9} {'p95':>9} {'p99':>9} {'n':>7}", file=stream)
    for key, title in (
        ("first_token_ms", "send -> first ai-token"),
        ("complete_ms", "send -> ai-complete"),
        ("truncate_ms", "edit -> conversation-truncated"),
    ):
        print(
            f"{title:<34} {f[key + '_p50']:>9.2f} {f[key + '_p95']:>9.2f}"
            f" {f[key + '_p99']:>9.2f} {f[key + '_n']:>7}",
            file=stream,
        )
    print(
        f"delivered: {f['events_per_s']:.0f} events/s, {f['tokens_per_s']:.0f} ai-token/s"
        f" ({f['events']} events)",
        file=stream,
    )
    print(
        f"errors: {f['errors'] or 'none'}; set-up errors: {f['setup_errors'] or 'none'}",
        file=stream,
    )
    print(
        f"harness CPU: {f['harness_cpu_s']:.2f} s ({f['harness_cpu_us_per_event']} us/event,"
        f" {f['harness_cpu_share'] * 100:.0f}% of one core); whole machine"
        f" {f['host_cpu_busy'] * 100:.0f}% busy (all cores)",
        file=stream,
    )
    if "server_cpu_s" in f:
        print(
            f"server CPU: {f['server_cpu_s']:.2f} s ({f['server_cpu_us_per_event']} us/event,"
            f" {f['server_cpu_share'] * 100:.0f}% of one core); RSS {f['server_rss_mib']} MiB,"
            f" peak {f['server_rss_peak_mib']} MiB; other processes (PostgreSQL, anything else)"
            f" {f['other_cpu_cores']:.2f} cores, interrupts {f['interrupt_cpu_cores']:.2f} cores",
            file=stream,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Load-test a chat server through its real protocol.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    parser.add_argument("--path", default="/api/socket", help="Socket.IO path")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per client")
    parser.add_argument("--duration", type=float, default=60.0, help="hard stop, seconds")
    parser.add_argument("--model", default="scripted:40:15", help="model of the conversations")
    parser.add_argument("--driver", choices=("node", "python"), default="node")
    parser.add_argument("--procs", type=int, default=2, help="Node worker processes")
    parser.add_argument("--no-edit", action="store_true", help="send only, no edit step")
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="mean pause between rounds (uniform 0..2x)"
    )
    parser.add_argument(
        "--spread-ms",
        type=float,
        default=0.0,
        help="start each client at a random offset up to this",
    )
    parser.add_argument(
        "--transport",
        choices=("websocket", "polling"),
        default="websocket",
        help="websocket only, or polling then upgrade (as browsers do)",
    )
    parser.add_argument("--step-timeout", type=float, default=30.0, help="seconds per step")
    parser.add_argument(
        "--setup-timeout",
        type=float,
        default=300.0,
        help="seconds for every client to sign in, connect and join",
    )
    parser.add_argument("--server-pid", type=int, help="server PID on this machine (CPU, RSS)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: table, then the JSON figures as the last line."""
    args = _parser().parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.duration <= 0:
        print("--clients and --rounds must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    flow = FlowConfig(
        url=args.url.rstrip("/"),
        path=args.path,
        model=args.model,
        rounds=args.rounds,
        duration_s=args.duration,
        edit=not args.no_edit,
        think_ms=args.think_ms,
        start_spread_ms=args.spread_ms,
        step_timeout_s=args.step_timeout,
        transports=("websocket",) if args.transport == "websocket" else ("polling", "websocket"),
        run_id=secrets.token_hex(4),
    )
    options = LoadOptions(
        flow=flow,
        clients=args.clients,
        driver=args.driver,
        procs=args.procs,
        server_pid=args.server_pid,
        progress=not args.quiet,
        setup_timeout_s=args.setup_timeout,
    )
    try:
        figures = asyncio.run(run_load(options))
    except (WorkerError, OSError) as exc:
        print(f"load test failed: {exc}", file=sys.stderr)
        return 1
    print_table(figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
