"""CPU time and memory of a process, read from /proc (Linux)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HostSample",
    "ProcSample",
    "host_sample",
    "raise_nofile_limit",
    "sample",
    "self_cpu_seconds",
]

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """utime+stime of all the process's threads (s), resident and peak resident set (KiB)."""

    cpu_s: float
    rss_kib: int
    hwm_kib: int


def sample(pid: int) -> ProcSample:
    """Read /proc/<pid>/stat and /proc/<pid>/status now (CPU resolution: one clock tick)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may hold spaces), from field 3 (state) on.
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])
    memory: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0])
    return ProcSample(
        cpu_s=(utime + stime) / _TICKS,
        rss_kib=memory.get("VmRSS", 0),
        hwm_kib=memory.get("VmHWM", 0),
    )


def self_cpu_seconds() -> float:
    """CPU time of this process (all threads)."""
    return time.process_time()


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the new limit.

    Also usable as a subprocess ``preexec_fn``: the child inherits the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass(frozen=True, slots=True)
class HostSample:
    """Cumulative CPU ticks of the whole machine (all cores): busy and total."""

    busy: int
    total: int
    interrupts: int  # irq + softirq: e.g. loopback TCP delivery, charged to no process

    def busy_share_since(self, earlier: HostSample) -> float:
        """Fraction of all cores' time spent busy between `earlier` and this sample."""
        total = self.total - earlier.total
        return (self.busy - earlier.busy) / total if total > 0 else 0.0

    def busy_seconds_since(self, earlier: HostSample) -> float:
        """CPU seconds the whole machine spent busy (all cores) since `earlier`."""
        return (self.busy - earlier.busy) / _TICKS

    def interrupt_seconds_since(self, earlier: HostSample) -> float:
        """CPU seconds spent in hardware and software interrupts since `earlier`."""
        return (self.interrupts - earlier.interrupts) / _TICKS


def host_sample() -> HostSample:
    """Read the aggregate `cpu` line of /proc/stat (idle and iowait count as not busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # guest time is already counted in user time
    interrupts = sum(fields[5:7]) if len(fields) > 6 else 0
    return HostSample(busy=total - idle, total=total, interrupts=interrupts)
