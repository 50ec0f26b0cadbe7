"""Sampling profiles of the server subprocess with py-spy (an optional, external tool).

py-spy is not a project dependency: install it anywhere (``pip install py-spy`` in a
throwaway virtualenv) and pass its path. It attaches to the running server by PID, so
no server code changes; `--nonblocking` keeps it from pausing the process it samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["recording", "top_functions"]

_LINE = re.compile(r":\d+\)$")


@asynccontextmanager
async def recording(
    py_spy: str | None, pid: int, output: Path, rate: int = 250
) -> AsyncIterator[None]:
    """Record `pid` in py-spy's raw (collapsed stack) format while the block runs."""
    if py_spy is None:
        yield
        return
    proc = await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # attaching takes a moment
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def top_functions(raw: Path, limit: int = 20) -> list[tuple[str, float, float]]:
    """(function (file), self %, total %) of the busiest functions in a raw profile."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return []
    return [
        (name, 100.0 * count / samples, 100.0 * total[name] / samples)
        for name, count in own.most_common(limit)
    ]
