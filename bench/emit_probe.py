"""Timestamps of `ai-token` emits, taken inside the server process for latency figures.

The server does not timestamp its events. For an honest emit-to-receipt latency the
benchmark server runs with this probe (see `probed_run.py`): it wraps the broadcaster's
`tokens` method (one call per `ai-token`, before the packet is encoded and fanned out)
and keeps `time.time()` per token in memory; after each `ai-complete` it appends that
reply's records to a file in one write, so the probe costs a clock read and a list
append per token, and no I/O while tokens stream.

Line format: ``<conversation id> <sequence> <tokenIndex> <time.time() seconds>``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["install", "read_emits"]


def install(log_path: Path) -> bool:
    """Wrap `server.broadcast.SocketIOBroadcaster` to record emit times into `log_path`.

    Returns False (and changes nothing) when the server no longer has the methods this
    probe wraps; the paced benchmark then falls back to its first-receipt method.
    """
    from protocol.names import ServerEvent
    from server.realtime import broadcaster as broadcast

    SocketIOBroadcaster = getattr(broadcast, "SocketIOBroadcaster", None)
    if not all(hasattr(SocketIOBroadcaster, n) for n in ("tokens", "to_conversation")):
        return False

    pending: dict[uuid.UUID, list[str]] = {}
    tokens = SocketIOBroadcaster.tokens
    to_conversation = SocketIOBroadcaster.to_conversation

    async def timed_tokens(self: Any, conversation_id: uuid.UUID, full: Any, delta: Any) -> None:
        stamp = time.time()
        pending.setdefault(conversation_id, []).append(
            f"{conversation_id} {full.sequence} {full.token_index} {stamp:.6f}\n"
        )
        await tokens(self, conversation_id, full, delta)

    async def flushing_to_conversation(
        self: Any, conversation_id: uuid.UUID, event: Any, payload: Any, **kwargs: Any
    ) -> None:
        await to_conversation(self, conversation_id, event, payload, **kwargs)
        if event in (ServerEvent.AI_COMPLETE, ServerEvent.AI_ERROR):
            lines = pending.pop(conversation_id, None)
            if lines:
                with log_path.open("a") as sink:
                    sink.write("".join(lines))

    SocketIOBroadcaster.tokens = timed_tokens
    SocketIOBroadcaster.to_conversation = flushing_to_conversation
    return True


def read_emits(log_path: Path, conversation_id: str, sequence: int) -> dict[int, float]:
    """tokenIndex -> emit time (time.time() seconds) of one reply, from the probe's file."""
    emits: dict[int, float] = {}
    if not log_path.exists():
        return emits
    for line in log_path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == conversation_id and int(parts[1]) == sequence:
            emits[int(parts[2])] = float(parts[3])
    return emits
