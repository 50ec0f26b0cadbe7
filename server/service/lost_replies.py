"""Replies whose instance died: noticed in seconds, ended for the room, the lock freed.

Every instance runs `LostReplies.run`: once a second it asks the tracker which replies
of other instances stopped renewing their liveness for a whole window
(`server.service.reply_liveness`), and takes each over: it releases that reply's lock
in PostgreSQL only if the lock is still that owner's (one instance wins), tells the
room `ai-error {code: REPLY_LOST}` (the terminal event the reply never sent), and
leaves a tombstone so the owner, if it was only stalled, stops. The owner's commit is
fenced by the lock: it checks, in its own transaction, that the lock is still its.

With one instance (no Redis) there is nobody else to notice: a lock whose owner is
not running in this process is dead, and the next send takes it over
(`ChatService.begin_send`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg

import storage
from protocol.names import ErrorCode, ServerEvent
from protocol.socket_events import AiError
from server.service.broadcaster import Broadcaster
from server.service.generation_tracker import GenerationTracker, LostReply
from server.service.metrics import Metrics

__all__ = ["REPLY_LOST_MESSAGE", "LostReplies"]

_LOG = logging.getLogger(__name__)
REPLY_LOST_MESSAGE = "The reply was lost when its server stopped; send again"


class LostReplies:
    def __init__(
        self,
        pool: asyncpg.Pool,
        tracker: GenerationTracker,
        broadcaster: Broadcaster,
        metrics: Metrics,
    ) -> None:
        self._pool = pool
        self._tracker = tracker
        self._broadcast = broadcaster
        self._metrics = metrics

    async def take_over(self, lost: LostReply) -> bool:
        """End a lost reply for good; False when its lock was no longer its (it ended, or
        another instance took it over first)."""
        async with storage.user_tx(self._pool, lost.user_id) as con:
            released = await storage.release_generation(con, lost.conversation_id, lost.owner)
        await self._tracker.forget_lost(lost)
        if released:
            await self.announce(lost.conversation_id, lost.sequence)
        return released

    async def announce(self, conversation_id: uuid.UUID, sequence: int) -> None:
        """Tell the room the reply `sequence` is lost (its terminal event)."""
        self._metrics.replies_taken_over.inc()
        _LOG.warning("reply lost conversation=%s sequence=%d", conversation_id, sequence)
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.AI_ERROR,
            AiError(sequence=sequence, code=ErrorCode.REPLY_LOST, message=REPLY_LOST_MESSAGE),
        )

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for lost in await self._tracker.lost_replies():
                try:
                    await self.take_over(lost)
                except storage.StorageError as exc:  # the database is away: next round
                    _LOG.warning("could not take over a lost reply: %s", type(exc).__name__)
