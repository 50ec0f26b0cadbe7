"""Generating one AI reply: stream it to the room, then commit it if still allowed.

Order of durability: the user's message was committed by `ChatService.begin_send`
before this runs; the reply is committed before `ai-complete` is sent, in a transaction
that first checks this generation still holds the conversation's lock (an edit deletes
the lock, so a discarded reply can never be written after the edit).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg
from msgspec import UNSET

import crypto
import storage
from ai import AIError, ChatMessage, FinishReason, ProviderRegistry, Role, build_context
from protocol.names import ErrorCode, ServerEvent
from protocol.socket_events import AiComplete, AiError, AiToken
from server.service.broadcaster import Broadcaster
from server.service.chain_append import append_message
from server.service.generation_tracker import GenerationTracker
from server.service.generations import (
    CancelMode,
    GenerationOutcome,
    LocalGenerations,
    RunningGeneration,
)
from server.service.identity import Identity
from server.service.metrics import Metrics
from server.service.timefmt import now_iso

__all__ = ["ReplyJob", "ReplyRunner"]

_LOG = logging.getLogger(__name__)
_HISTORY_LIMIT = 200
_COMMIT_RETRY_FIRST_S = 0.25
_COMMIT_RETRY_MAX_S = 2.0
_ROLES: dict[crypto.Role, Role] = {
    crypto.Role.USER: "user",
    crypto.Role.ASSISTANT: "assistant",
    crypto.Role.SYSTEM: "system",
}


@dataclass(frozen=True, slots=True)
class ReplyJob:
    """Everything one reply needs, prepared by the send or edit that stored the user's
    message (in the same transaction): who asked, which model, the context, the keys."""

    generation: RunningGeneration
    identity: Identity
    model: str
    history: list[ChatMessage]
    keys: crypto.ConversationKeys


class ReplyRunner:
    """Runs generations as tasks of their own (a client going away does not stop them)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: ProviderRegistry,
        broadcaster: Broadcaster,
        generations: LocalGenerations,
        tracker: GenerationTracker,
        metrics: Metrics,
        *,
        lock_ttl_s: float,
        coalesce_ms: float,
        system_prompt: str,
        context_budget_tokens: int,
        max_reply_tokens: int,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._broadcast = broadcaster
        self._generations = generations
        self._tracker = tracker
        self._metrics = metrics
        self._lock_ttl_s = lock_ttl_s
        self._coalesce_s = coalesce_ms / 1000.0
        self._system_prompt = system_prompt
        self._budget = context_budget_tokens
        self._max_reply_tokens = max_reply_tokens

    def running(self, conversation_id: uuid.UUID) -> RunningGeneration | None:
        """The generation of this conversation running on this instance, if any."""
        return self._generations.get(conversation_id)

    def start(self, job: ReplyJob) -> None:
        """Register the generation and start its task (no await: listeners attach first)."""
        generation = job.generation
        self._generations.add(generation)
        generation.task = asyncio.create_task(
            self._run(job), name=f"generation:{generation.conversation_id}"
        )

    async def _run(self, job: ReplyJob) -> GenerationOutcome:
        generation = job.generation
        await self._tracker.started(generation)
        try:
            outcome = await self._outcome(job)
        finally:
            self._generations.remove(generation)
            await self._tracker.ended(generation)
        self._metrics.generations.labels(_outcome_label(outcome)).inc()
        return outcome

    async def _outcome(self, job: ReplyJob) -> GenerationOutcome:
        """Generate; every failure becomes an outcome the room has been told about."""
        try:
            return await self._generate(job)
        except AIError as exc:
            return await self._fail(job, exc.code, exc.message)
        except storage.Unavailable:
            return await self._fail(job, ErrorCode.UNAVAILABLE, "Database unavailable")
        except asyncio.CancelledError:
            await self._release(job)
            raise
        except Exception:
            _LOG.exception(
                "generation failed conversation=%s sequence=%d",
                job.generation.conversation_id,
                job.generation.sequence,
            )
            return await self._fail(job, ErrorCode.AI_ERROR, "The reply could not be generated")

    async def load_history(
        self,
        con: storage.Connection,
        conversation_id: uuid.UUID,
        keys: crypto.ConversationKeys,
        upto_seq: int,
    ) -> list[ChatMessage]:
        """The last messages up to `upto_seq`, decrypted, read in the caller's transaction
        (the one that stores the user's message), so a send costs no extra round trip."""
        if upto_seq < 1:
            return []
        rows = await storage.list_messages(
            con,
            conversation_id,
            from_seq=max(1, upto_seq - _HISTORY_LIMIT + 1),
            to_seq=upto_seq,
        )
        history: list[ChatMessage] = []
        for row in rows:
            try:
                message = crypto.unpack(keys, conversation_id, row.token, expected_sequence=row.seq)
            except crypto.InvalidToken:
                _LOG.warning("skipping unreadable message seq=%d in context", row.seq)
                continue
            history.append(ChatMessage(role=_ROLES[message.role], content=message.content))
        return history

    async def _generate(self, job: ReplyJob) -> GenerationOutcome:
        generation = job.generation
        provider = self._registry.provider_for(job.model)
        context = build_context(
            job.history, system_prompt=self._system_prompt, budget_tokens=self._budget
        )
        stream = provider.stream(
            context, job.model, max_tokens=self._max_reply_tokens, cancel=generation.cancel_event
        )
        loop = asyncio.get_running_loop()
        next_extend = loop.time() + self._lock_ttl_s / 3
        pending = ""
        last_flush = loop.time()
        try:
            async for delta in stream:
                if generation.cancel_mode is CancelMode.DISCARD:
                    break
                pending += delta
                now = loop.time()
                if self._coalesce_s <= 0 or now - last_flush >= self._coalesce_s:
                    await self._emit_token(generation, pending)
                    pending, last_flush = "", now
                if now >= next_extend:
                    next_extend = now + self._lock_ttl_s / 3
                    if not await self._extend(job):
                        generation.request_cancel(CancelMode.DISCARD)
                        break
        finally:
            await stream.aclose()
        if generation.cancel_mode is CancelMode.DISCARD:
            return self._discarded(generation)
        if pending:
            await self._emit_token(generation, pending)
        stopped = (
            generation.cancel_mode is CancelMode.STOP
            or stream.finish_reason is FinishReason.STOPPED
        )
        if not generation.partial:
            if stopped:
                return await self._finish_empty(job)
            return await self._fail(job, ErrorCode.AI_ERROR, "The model returned an empty reply")
        return await self._commit(job, stopped=stopped)

    async def _emit_token(self, generation: RunningGeneration, token: str) -> None:
        """One `ai-token`: recorded (for late joiners) before it is sent. A reply that
        another instance took over (this one was stalled) sends nothing more."""
        generation.add_token(token)
        if not await self._tracker.progressed(generation, token):
            generation.request_cancel(CancelMode.DISCARD)
            return
        full = AiToken(
            sequence=generation.sequence,
            token=token,
            partial=generation.partial,
            token_index=generation.token_index,
        )
        delta = AiToken(
            sequence=generation.sequence, token=token, token_index=generation.token_index
        )
        await self._broadcast.tokens(generation.conversation_id, full, delta)

    async def _extend(self, job: ReplyJob) -> bool:
        generation = job.generation
        async with storage.user_tx(self._pool, job.identity.user_id) as con:
            return await storage.extend_generation(
                con, generation.conversation_id, generation.owner, self._lock_ttl_s
            )

    async def _commit(self, job: ReplyJob, *, stopped: bool) -> GenerationOutcome:
        """Store the reply; while the database is away, retry with backoff for up to the
        lock's lifetime (the reply's liveness mark stays fresh meanwhile, so no instance
        takes it over), then give up as UNAVAILABLE (the room is told)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_ttl_s
        delay = _COMMIT_RETRY_FIRST_S
        while True:
            try:
                return await self._commit_once(job, stopped=stopped)
            except storage.Unavailable:
                discarded = job.generation.cancel_mode is CancelMode.DISCARD
                if discarded or loop.time() + delay > deadline:
                    raise
                self._metrics.commit_retries.inc()
                _LOG.warning(
                    "database unavailable at commit conversation=%s; retrying in %.1f s",
                    job.generation.conversation_id,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _COMMIT_RETRY_MAX_S)

    async def _commit_once(self, job: ReplyJob, *, stopped: bool) -> GenerationOutcome:
        generation, keys = job.generation, job.keys
        conversation_id = generation.conversation_id
        content = generation.partial
        async with storage.user_tx(self._pool, job.identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if (
                record is None
                or record.message_count + 1 != generation.sequence
                or not await storage.owns_generation(con, conversation_id, generation.owner)
            ):
                return self._discarded(generation)
            await append_message(
                con,
                keys,
                record,
                content,
                role=crypto.Role.ASSISTANT,
                sender_id=None,
                stopped=stopped,
            )
            await storage.release_generation(con, conversation_id, generation.owner)
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.AI_COMPLETE,
            AiComplete(
                sequence=generation.sequence,
                content=content,
                message_count=generation.sequence,
                timestamp=now_iso(),
                stopped=True if stopped else UNSET,
            ),
        )
        return GenerationOutcome(
            sequence=generation.sequence,
            content=content,
            message_count=generation.sequence,
            stored=True,
            stopped=stopped,
        )

    async def _finish_empty(self, job: ReplyJob) -> GenerationOutcome:
        """Stopped before the first token: nothing to store, the lock is released."""
        generation = job.generation
        await self._release(job)
        count = generation.sequence - 1
        await self._broadcast.to_conversation(
            generation.conversation_id,
            ServerEvent.AI_COMPLETE,
            AiComplete(
                sequence=generation.sequence,
                content="",
                message_count=count,
                timestamp=now_iso(),
                stopped=True,
            ),
        )
        return GenerationOutcome(
            sequence=generation.sequence,
            content="",
            message_count=count,
            stored=False,
            stopped=True,
        )

    async def _release(self, job: ReplyJob) -> None:
        generation = job.generation
        try:
            async with storage.user_tx(self._pool, job.identity.user_id) as con:
                await storage.release_generation(con, generation.conversation_id, generation.owner)
        except storage.StorageError:
            # The lock expires by itself; nothing else depends on this release.
            _LOG.warning(
                "could not release generation lock conversation=%s", generation.conversation_id
            )

    async def _fail(self, job: ReplyJob, code: str, message: str) -> GenerationOutcome:
        """The provider failed: the user's message stays, the room is told, nothing else."""
        generation = job.generation
        await self._release(job)
        if generation.cancel_mode is CancelMode.DISCARD:
            return self._discarded(generation)
        _LOG.warning(
            "generation error conversation=%s sequence=%d code=%s",
            generation.conversation_id,
            generation.sequence,
            code,
        )
        try:
            await self._broadcast.to_conversation(
                generation.conversation_id,
                ServerEvent.AI_ERROR,
                AiError(sequence=generation.sequence, code=code, message=message),
            )
        except Exception:
            _LOG.exception("could not deliver ai-error")
        return GenerationOutcome(
            sequence=generation.sequence,
            content=generation.partial,
            message_count=generation.sequence - 1,
            stored=False,
            error_code=code,
            error_message=message,
        )

    @staticmethod
    def _discarded(generation: RunningGeneration) -> GenerationOutcome:
        return GenerationOutcome(
            sequence=generation.sequence,
            content="",
            message_count=generation.sequence - 1,
            stored=False,
            discarded=True,
        )


def _outcome_label(outcome: GenerationOutcome) -> str:
    if outcome.error_code is not None:
        return "error"
    if outcome.discarded:
        return "discarded"
    return "stopped" if outcome.stopped else "completed"
