"""The benchmark harness end to end at toy size: server subprocess, Node and Python clients.

Runs `bench/run.py --toy` as a user would and checks that the last line is one JSON
object with every figure, and that the figures are sane (counts add up, latencies and
costs are positive and bounded). Timing targets are not asserted: benchmarks, not tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.nodeworkers import node_available

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = (
    "pack_us",
    "unpack_us",
    "append_ratio_10k_over_10",
    "edit_ms_10k",
    "bytes_per_message",
    "fanout_events_per_s",
    "fanout_server_us_per_event",
    "paced_p99_ms",
    "first_token_p99_ms",
    "idle_kib_per_socket",
    "partial_bytes_per_reply",
    "delta_bytes_per_reply",
    "load_node_first_token_ms_p99",
    "load_node_complete_ms_p99",
    "load_node_truncate_ms_p99",
    "load_python_truncate_ms_p99",
    "argon2_dummy_verify_ms",
    "ping_wheel_late_ms_p99",
    "flood_baseline_rtt_ms_p50",
    "flood_neighbour_rtt_ms_p50",
)


def _positive(figures: dict[str, Any], key: str, upper: float) -> None:
    value = figures[key]
    assert isinstance(value, int | float) and not math.isnan(value), (key, value)
    assert 0 < value < upper, (key, value)


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    problem = node_available()
    if problem is not None:
        pytest.fail(f"the harness needs Node clients: {problem}")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--toy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 5, "a human-readable table comes before the JSON line"
    parsed = json.loads(lines[-1])
    assert isinstance(parsed, dict)
    return parsed


def test_every_figure_is_reported(figures: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED if key not in figures]
    assert missing == []


def test_fan_out_counts_every_event_and_costs_something(figures: dict[str, Any]) -> None:
    assert figures["fanout_events"] == figures["fanout_events_expected"] > 0
    assert figures["fanout_min_tokens_per_client"] == figures["fanout_tokens"]
    assert figures["fanout_timed_out"] is False
    _positive(figures, "fanout_events_per_s", 10_000_000)
    # Tick-granular CPU over a toy stream may round to zero, never below it.
    assert 0 <= figures["fanout_server_us_per_event"] < 10_000


def test_latencies_are_positive_and_bounded(figures: dict[str, Any]) -> None:
    for key in (
        "paced_p99_ms",
        "first_token_p99_ms",
        "first_token_burst_p99_ms",
        "load_node_first_token_ms_p99",
        "load_node_complete_ms_p99",
        "load_node_truncate_ms_p99",
        "load_python_complete_ms_p99",
        "load_python_truncate_ms_p99",
        "ping_wheel_late_ms_p99",
        "flood_baseline_rtt_ms_p50",
        "flood_neighbour_rtt_ms_p50",
    ):
        _positive(figures, key, 10_000)
    assert figures["paced_method"] == "emit-probe"
    assert figures["paced_missing_receipts"] == 0
    assert figures["paced_p99_ms"] >= figures["paced_p50_ms"]
    assert figures["load_node_complete_ms_p99"] > figures["load_node_first_token_ms_p50"]


def test_every_ping_and_every_flooded_event_is_accounted_for(figures: dict[str, Any]) -> None:
    assert figures["ping_wheel_lost"] == 0
    assert figures["ping_wheel_min_late_ms"] >= 0, "a ping left before its interval"
    assert figures["ping_wheel_late_ms_n"] > 0
    # Half the flood is over the per-minute limit: answered, then refused, none lost.
    assert figures["flood_answered"] > 0 and figures["flood_refused"] > 0
    assert figures["flood_answered"] + figures["flood_refused"] == figures["flood_events"]
    assert figures["flood_neighbour_rtt_ms_n"] > 0


def test_no_client_saw_an_error(figures: dict[str, Any]) -> None:
    for key in (
        "first_token_errors",
        "first_token_burst_errors",
        "load_node_errors",
        "load_node_setup_errors",
        "load_python_errors",
        "load_python_setup_errors",
    ):
        assert figures[key] == {}, (key, figures[key])
    assert figures["load_node_rounds_done"] == figures["load_node_clients_ready"] > 0
    assert figures["load_python_rounds_done"] == figures["load_python_clients_ready"] > 0


def test_wire_bytes_agree_and_partial_costs_more(figures: dict[str, Any]) -> None:
    # TCP bytes read by the websocket and frames rebuilt from packets: the same stream.
    assert figures["partial_bytes_per_reply"] == figures["partial_frame_bytes_per_reply"]
    assert figures["delta_bytes_per_reply"] == figures["delta_frame_bytes_per_reply"]
    assert figures["partial_bytes_per_reply"] > figures["delta_bytes_per_reply"] > 0
    assert figures["wire_tokens_received"] == [figures["wire_tokens"]] * 2


def test_micro_benchmarks_and_memory_are_sane(figures: dict[str, Any]) -> None:
    _positive(figures, "pack_us", 10_000)
    _positive(figures, "unpack_us", 10_000)
    _positive(figures, "append_ratio_10k_over_10", 100)
    _positive(figures, "edit_ms_10k", 10_000)
    _positive(figures, "argon2_dummy_verify_ms", 10_000)
    _positive(figures, "bytes_per_message", 100_000)
    assert figures["idle_sockets"] > 0
    # A toy number of sockets moves RSS by a page or two; only the sign of madness counts.
    assert -1_000 < figures["idle_kib_per_socket"] < 1_000
