"""Running AI generations of this instance: one per conversation, observable, cancellable.

The cross-instance guarantee (one generation per conversation, a cancelled one never
writes) is the `generation_locks` row in PostgreSQL: the reply is committed only in a
transaction that still finds its own lock, and an edit deletes the lock in the same
transaction that truncates. This registry only adds what one process needs on top:
prompt cancellation, the partial text for sockets that join mid-stream, and listeners
(REST streaming) that follow a generation's tokens.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from server.service import exceptions as errors

__all__ = ["CancelMode", "GenerationOutcome", "LocalGenerations", "RunningGeneration"]


class CancelMode(enum.Enum):
    """Why a generation is asked to end early."""

    DISCARD = "discard"  # an edit or delete: write nothing, ever
    STOP = "stop"  # stop-generation: keep the reply so far, marked stopped


@dataclass(frozen=True, slots=True)
class GenerationOutcome:
    """How a generation ended; `message_count` is the conversation's count afterwards."""

    sequence: int
    content: str
    message_count: int
    stored: bool
    stopped: bool = False
    discarded: bool = False
    error_code: str | None = None
    error_message: str | None = None

    def failure(self) -> errors.ServiceError | None:
        """What a client is told when the reply did not complete: the provider's error,
        or CANCELLED when an edit or delete discarded it; None for a reply (even stopped)."""
        if self.error_code is not None:
            return errors.GenerationFailed(self.error_code, self.error_message or "AI error")
        if self.discarded:
            return errors.Cancelled()
        return None


TokenListener = Callable[[str, str], None]


@dataclass(slots=True, eq=False)
class RunningGeneration:
    """One generation in progress on this instance."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    owner: uuid.UUID
    sequence: int
    partial: str = ""
    token_index: int = 0
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_mode: CancelMode | None = None
    listeners: list[TokenListener] = field(default_factory=list)
    task: asyncio.Task[GenerationOutcome] | None = None

    def request_cancel(self, mode: CancelMode) -> None:
        """Ask the stream to end at its next chunk; DISCARD wins over STOP."""
        if self.cancel_mode is not CancelMode.DISCARD:
            self.cancel_mode = mode
        self.cancel_event.set()

    def add_token(self, token: str) -> None:
        self.partial += token
        self.token_index += 1
        for listener in list(self.listeners):
            listener(token, self.partial)


class LocalGenerations:
    """The generations running in this process, by conversation."""

    def __init__(self) -> None:
        self._running: dict[uuid.UUID, RunningGeneration] = {}

    def get(self, conversation_id: uuid.UUID) -> RunningGeneration | None:
        return self._running.get(conversation_id)

    def add(self, generation: RunningGeneration) -> None:
        self._running[generation.conversation_id] = generation

    def remove(self, generation: RunningGeneration) -> None:
        if self._running.get(generation.conversation_id) is generation:
            del self._running[generation.conversation_id]

    def all(self) -> list[RunningGeneration]:
        return list(self._running.values())

    async def cancel(
        self, conversation_id: uuid.UUID, mode: CancelMode, *, wait_s: float = 5.0
    ) -> bool:
        """Cancel the local generation of a conversation and wait until it has ended."""
        generation = self._running.get(conversation_id)
        if generation is None:
            return False
        generation.request_cancel(mode)
        if generation.task is not None and not generation.task.done():
            await asyncio.wait({generation.task}, timeout=wait_s)
        return True

    async def drain(self, timeout_s: float) -> None:
        """Let running generations finish (graceful shutdown), then stop the rest."""
        tasks = {g.task for g in self._running.values() if g.task is not None}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for generation in self.all():
            if generation.task in pending:
                generation.request_cancel(CancelMode.STOP)
        if pending:
            await asyncio.wait(pending, timeout=5.0)
