"""What every instance may need to know about running generations, and how to stop them.

`LocalTracker` serves one instance. `RedisTracker` adds, for many instances:
- the running reply's text so far, so a socket that joins on another instance resumes
  it (`state.generating`) with no gap: the text is appended to Redis *before* each
  `ai-token` is emitted, and a joiner enters the room *before* reading it, so any token
  is either in the snapshot or delivered after it (a client may see a token twice and
  drops `tokenIndex <= generating.tokenIndex`);
- a control channel, so an edit, delete or stop on one instance cancels the generation
  running on another; the canceller then waits until that generation has ended, so no
  token of a discarded reply is emitted after `conversation-truncated`.
Neither carries clear text: the mirror is sealed chunks (`sealed_mirror`), the control
channel's messages are sealed and checked for replay (`sealed_channel`).
The lock that decides who may write stays in PostgreSQL (see `server.replies`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Protocol

import redis.asyncio as redis_asyncio

from protocol.socket_events import GeneratingState
from server.service.generations import CancelMode, LocalGenerations, RunningGeneration
from server.service.redis_errors import REDIS_ERRORS
from server.service.reply_liveness import LostReply, RedisLiveness
from server.service.sealed_channel import SealedChannel
from server.service.sealed_mirror import SealedMirror

__all__ = ["GenerationTracker", "LocalTracker", "LostReply", "RedisTracker", "control_channel"]

_LOG = logging.getLogger(__name__)
_CANCEL_WAIT_S = 5.0
_HEARTBEAT_S = 1.0
# The mirror of a running reply is whole or absent: owner, sequence and index with the
# text. A token is appended only to this owner's record; when the record is gone (Redis
# restarted, or the keys expired while it was unreachable) the script says so (-1) and
# the owner writes the whole record again with the text so far. Another owner's record,
# or another owner's liveness mark (the reply was taken over), refuses the token (0).
_APPEND_IF_OWNER = """
local mark = redis.call('GET', KEYS[3])
if mark ~= false and mark ~= ARGV[1] then
  return 0
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == false then
  return -1
end
if owner ~= ARGV[1] then
  return 0
end
redis.call('APPEND', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'tokenIndex', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
_RECORD_FIELDS = (b"owner", b"sequence", b"tokenIndex")
_DELETE_IF_OWNER = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""


class GenerationTracker(Protocol):
    async def started(self, generation: RunningGeneration) -> None: ...

    async def progressed(self, generation: RunningGeneration, token: str) -> bool:
        """Record a token before it is sent; False when the reply was taken over (the
        token must not be sent, the generation stops)."""
        ...

    async def ended(self, generation: RunningGeneration) -> None: ...

    async def snapshot(self, conversation_id: uuid.UUID) -> GeneratingState | None: ...

    async def cancel(self, conversation_id: uuid.UUID, mode: CancelMode) -> bool: ...

    async def owner_alive(self, conversation_id: uuid.UUID, owner: uuid.UUID) -> bool | None:
        """Whether the reply `owner` of this conversation still runs: True, False (its
        instance is gone), or None (cannot tell; the lost-reply sweep decides)."""
        ...

    async def lost_replies(self) -> list[LostReply]:
        """Replies of instances that stopped renewing their liveness (see reply_liveness)."""
        ...

    async def forget_lost(self, lost: LostReply) -> None: ...

    async def run(self) -> None: ...


def _local_snapshot(generation: RunningGeneration | None) -> GeneratingState | None:
    if generation is None or generation.cancel_mode is CancelMode.DISCARD:
        return None
    return GeneratingState(
        sequence=generation.sequence, partial=generation.partial, token_index=generation.token_index
    )


class LocalTracker:
    """One instance: everything is in this process."""

    def __init__(self, generations: LocalGenerations) -> None:
        self._generations = generations

    async def started(self, generation: RunningGeneration) -> None:
        return None

    async def progressed(self, generation: RunningGeneration, token: str) -> bool:
        return True

    async def ended(self, generation: RunningGeneration) -> None:
        return None

    async def owner_alive(self, conversation_id: uuid.UUID, owner: uuid.UUID) -> bool | None:
        """One instance: a reply runs in this process or nowhere (a lock left by a process
        that died before this one started is dead)."""
        running = self._generations.get(conversation_id)
        return running is not None and running.owner == owner

    async def lost_replies(self) -> list[LostReply]:
        return []

    async def forget_lost(self, lost: LostReply) -> None:
        return None

    async def snapshot(self, conversation_id: uuid.UUID) -> GeneratingState | None:
        return _local_snapshot(self._generations.get(conversation_id))

    async def cancel(self, conversation_id: uuid.UUID, mode: CancelMode) -> bool:
        return await self._generations.cancel(conversation_id, mode, wait_s=_CANCEL_WAIT_S)

    async def run(self) -> None:
        await asyncio.Event().wait()


def control_channel(prefix: str) -> str:
    """The Redis channel on which instances ask each other to cancel replies."""
    return f"{prefix}generation-control"


class RedisTracker:
    """Many instances: running replies mirrored in Redis, cancellation over pub/sub."""

    def __init__(
        self,
        client: redis_asyncio.Redis,
        generations: LocalGenerations,
        *,
        control: SealedChannel,
        mirror: SealedMirror,
        ttl_s: float,
        prefix: str = "scca:",
    ) -> None:
        self._redis = client
        self._control = control
        self._mirror = mirror
        self._generations = generations
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._channel = control_channel(prefix)
        self._delete = client.register_script(_DELETE_IF_OWNER)
        self._append = client.register_script(_APPEND_IF_OWNER)
        self._liveness = RedisLiveness(client, prefix=prefix)
        #: How often a token found its mirror gone and wrote it whole again.
        self.mirror_rebuilds = 0

    def _keys(self, conversation_id: uuid.UUID) -> tuple[str, str]:
        base = f"{self._prefix}generation:{conversation_id}"
        return base, base + ":text"

    async def started(self, generation: RunningGeneration) -> None:
        try:
            await self._liveness.claim(generation)
            await self._write_whole(generation)
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: could not record generation start: %s", type(exc).__name__)

    async def _write_whole(self, generation: RunningGeneration) -> None:
        """The whole record in one transaction: owner, sequence, index and the text so far."""
        meta, text = self._keys(generation.conversation_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, text)
            pipe.hset(
                meta,
                mapping={
                    "owner": str(generation.owner),
                    "sequence": generation.sequence,
                    "tokenIndex": generation.token_index,
                },
            )
            if generation.partial:
                chunk = self._mirror.chunk(
                    generation.conversation_id,
                    generation.owner,
                    0,
                    generation.token_index,
                    generation.partial,
                )
                pipe.set(text, chunk)
                pipe.pexpire(text, self._ttl_ms)
            pipe.pexpire(meta, self._ttl_ms)
            await pipe.execute()

    async def progressed(self, generation: RunningGeneration, token: str) -> bool:
        meta, text = self._keys(generation.conversation_id)
        mark = self._liveness.mark_key(generation.conversation_id)
        index = generation.token_index
        chunk = self._mirror.chunk(
            generation.conversation_id, generation.owner, index - 1, index, token
        )
        try:
            appended = await self._append(
                keys=[meta, text, mark],
                args=[str(generation.owner), index, chunk, self._ttl_ms],
            )
            if appended == 0:
                return False
            if appended == -1:
                self.mirror_rebuilds += 1
                await self._write_whole(generation)
        except REDIS_ERRORS:  # only remote resumes suffer; local sockets keep streaming
            return True
        return True

    async def ended(self, generation: RunningGeneration) -> None:
        await self._forget_mirror(generation.conversation_id, generation.owner)
        await self._liveness.forget(generation, lost=False)

    async def _forget_mirror(self, conversation_id: uuid.UUID, owner: uuid.UUID) -> None:
        meta, text = self._keys(conversation_id)
        try:
            await self._delete(keys=[meta, text], args=[str(owner)])
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: could not clear generation: %s", type(exc).__name__)

    async def owner_alive(self, conversation_id: uuid.UUID, owner: uuid.UUID) -> bool | None:
        running = self._generations.get(conversation_id)
        if running is not None and running.owner == owner:
            return True
        return None  # elsewhere: only the sweep's observation over a window can tell

    async def lost_replies(self) -> list[LostReply]:
        return await self._liveness.lost({g.conversation_id for g in self._generations.all()})

    async def forget_lost(self, lost: LostReply) -> None:
        """After a takeover: tombstone its mark, drop its mirror, and tell its instance
        (if it was only stalled) to stop."""
        await self._liveness.forget(lost, lost=True)
        await self._forget_mirror(lost.conversation_id, lost.owner)
        message = self._control.dumps(
            {"conversationId": str(lost.conversation_id), "mode": CancelMode.DISCARD.value}
        )
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.publish(self._channel, message)

    async def snapshot(self, conversation_id: uuid.UUID) -> GeneratingState | None:
        local = self._generations.get(conversation_id)
        if local is not None:
            return _local_snapshot(local)
        meta, text = self._keys(conversation_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(meta)
                pipe.get(text)
                fields, partial = await pipe.execute()
        except REDIS_ERRORS:
            return None
        if not all(field in fields for field in _RECORD_FIELDS):
            return None  # absent, or not whole: nothing to resume from
        try:
            sequence, token_index = int(fields[b"sequence"]), int(fields[b"tokenIndex"])
            owner = uuid.UUID(fields[b"owner"].decode())
        except ValueError:
            return None
        if token_index > 0 and not partial:
            return None  # the text was lost apart from its record
        resumed = self._mirror.read(conversation_id, owner, partial or b"", token_index)
        if resumed is None:
            return None
        return GeneratingState(sequence=sequence, partial=resumed, token_index=token_index)

    async def _running_elsewhere(self, conversation_id: uuid.UUID) -> bool:
        meta, _ = self._keys(conversation_id)
        return bool(await self._redis.exists(meta))

    async def cancel(self, conversation_id: uuid.UUID, mode: CancelMode) -> bool:
        """Cancel wherever it runs; return once it has ended (bounded)."""
        if await self._generations.cancel(conversation_id, mode, wait_s=_CANCEL_WAIT_S):
            return True
        try:
            if not await self._running_elsewhere(conversation_id):
                return False
            message = self._control.dumps(
                {"conversationId": str(conversation_id), "mode": mode.value}
            )
            await self._redis.publish(self._channel, message)
            async with asyncio.timeout(_CANCEL_WAIT_S):
                # Polling Redis: the other instance's end is only visible there.
                while await self._running_elsewhere(conversation_id):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            _LOG.warning("generation on another instance did not stop in time")
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: could not cancel a remote generation: %s", type(exc).__name__)
            return False
        return True

    async def run(self) -> None:
        """Renew the liveness of replies running here, and listen for cancellations."""
        await asyncio.gather(self._heartbeat(), self._listen())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_S)
            await self._liveness.renew_all(self._generations.all())

    async def _listen(self) -> None:
        """Listen for cancellations of generations running here; reconnects by itself."""
        delay = 0.5
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                delay = 0.5
                async for message in pubsub.listen():
                    self._on_message(message.get("data"))
            except REDIS_ERRORS as exc:
                _LOG.warning("redis control channel lost (%s); retrying", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _on_message(self, data: object) -> None:
        if not isinstance(data, bytes | str):
            return
        try:
            body = self._control.loads(data)
            conversation_id = uuid.UUID(body["conversationId"])
            mode = CancelMode(body["mode"])
        except (ValueError, KeyError, TypeError):
            return
        generation = self._generations.get(conversation_id)
        if generation is not None:
            generation.request_cancel(mode)
