"""Percentiles of latency samples, as the benchmarks report them."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "summary"]


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0 < p <= 100), linear between closest ranks; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary(samples: Sequence[float], prefix: str, digits: int = 3) -> dict[str, float]:
    """`{prefix_p50, prefix_p95, prefix_p99, prefix_max, prefix_n}` of the samples."""
    figures = {f"{prefix}_p{p}": percentile(samples, p) for p in (50, 95, 99)}
    figures[f"{prefix}_max"] = max(samples) if samples else math.nan
    rounded = {key: round(value, digits) for key, value in figures.items()}
    rounded[f"{prefix}_n"] = len(samples)
    return rounded
