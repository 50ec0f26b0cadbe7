"""Is the instance running a reply still alive? Short marks in Redis, renewed every second.

The generation lock in PostgreSQL lasts `GENERATION_LOCK_TTL_S` (30 s) so that a slow
provider never loses it; that is far too long to wait when the instance running a
reply died. So each instance also keeps, for every reply it runs, a liveness mark
`alive:<conversation>` = owner that expires after `ALIVE_TTL_S` (3 s) and is renewed
every second, and a registry entry `running[<conversation>]` = "user owner sequence".

`lost()` is the sweep's evidence: a registry entry whose mark has been missing (or
held by nobody) on every look for at least `ALIVE_TTL_S`, while Redis answered every
look. Redis being unreachable is not evidence that an owner died: any error forgets
what was seen, so after an outage marks get a full window to come back (each owner's
renewal re-creates its mark and entry, as after a Redis restart that lost them).

A takeover replaces the mark with a tombstone (`lost:<owner>`): an owner that was only
stalled (a long pause, SIGSTOP) finds it on its next renewal or token and stops; its
commit is fenced anyway by the lock's owner, checked in the commit's transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as redis_asyncio

from server.service.generations import CancelMode, RunningGeneration
from server.service.redis_errors import REDIS_ERRORS

__all__ = ["ALIVE_TTL_S", "LostReply", "RedisLiveness"]

_LOG = logging.getLogger(__name__)

ALIVE_TTL_S = 3.0
_TOMBSTONE_TTL_MS = 120_000

# Renew this owner's mark and registry entry, unless someone else's mark (a takeover's
# tombstone, or a newer reply) is there: 1 renewed, 0 taken over.
_RENEW = """
local mark = redis.call('GET', KEYS[1])
if mark ~= false and mark ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
# Forget a reply: its tombstone (a takeover) or nothing (it ended), and its entry,
# each only if it is still this owner's.
_FORGET = """
local mark = redis.call('GET', KEYS[1])
if mark == false or mark == ARGV[1] then
  if ARGV[3] == '1' then
    redis.call('SET', KEYS[1], 'lost:' .. ARGV[1], 'PX', ARGV[4])
  else
    redis.call('DEL', KEYS[1])
  end
end
local entry = redis.call('HGET', KEYS[2], ARGV[2])
if entry and string.find(entry, ARGV[1], 1, true) then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class LostReply:
    """A reply whose instance stopped renewing its mark: who may take it over, and how."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    owner: uuid.UUID
    sequence: int


def _entry(generation: RunningGeneration) -> str:
    return f"{generation.user_id} {generation.owner} {generation.sequence}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(conversation: bytes | str, entry: bytes | str) -> LostReply | None:
    try:
        user_id, owner, sequence = _text(entry).split(" ")
        return LostReply(
            conversation_id=uuid.UUID(_text(conversation)),
            user_id=uuid.UUID(user_id),
            owner=uuid.UUID(owner),
            sequence=int(sequence),
        )
    except (ValueError, UnicodeDecodeError):
        return None


class RedisLiveness:
    def __init__(
        self, client: redis_asyncio.Redis, *, prefix: str, alive_ttl_s: float = ALIVE_TTL_S
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = alive_ttl_s
        self._registry = f"{prefix}running"
        self._renew = client.register_script(_RENEW)
        self._forget = client.register_script(_FORGET)
        # (conversation, owner) -> when its mark was first seen missing, by this instance.
        self._missing_since: dict[tuple[uuid.UUID, uuid.UUID], float] = {}

    def mark_key(self, conversation_id: uuid.UUID) -> str:
        return f"{self._prefix}alive:{conversation_id}"

    async def claim(self, generation: RunningGeneration) -> None:
        """A new reply, holding the PostgreSQL lock: its mark replaces whatever was there
        (an ended or lost reply's tombstone)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(
                self.mark_key(generation.conversation_id),
                str(generation.owner),
                px=int(self._ttl_s * 1000),
            )
            pipe.hset(self._registry, str(generation.conversation_id), _entry(generation))
            await pipe.execute()

    def _renew_call(self, generation: RunningGeneration) -> tuple[list[str], list[str | int]]:
        keys = [self.mark_key(generation.conversation_id), self._registry]
        args: list[str | int] = [
            str(generation.owner),
            int(self._ttl_s * 1000),
            str(generation.conversation_id),
            _entry(generation),
        ]
        return keys, args

    async def renew(self, generation: RunningGeneration) -> bool:
        """Keep `generation` alive; False when it was taken over (it must stop). An
        unreachable Redis is not a takeover: True."""
        keys, args = self._renew_call(generation)
        try:
            renewed = await self._renew(keys=keys, args=args)
        except REDIS_ERRORS:
            return True
        return bool(renewed == 1)

    async def renew_all(self, generations: Iterable[RunningGeneration]) -> None:
        """One heartbeat, one round trip: renew every local reply; stop those that were
        taken over. An unreachable Redis stops nothing."""
        running = list(generations)
        if not running:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for generation in running:
                    keys, args = self._renew_call(generation)
                    await self._renew(keys=keys, args=args, client=pipe)
                renewed = await pipe.execute()
        except REDIS_ERRORS:
            return
        for generation, result in zip(running, renewed, strict=True):
            if result != 1:
                _LOG.warning(
                    "reply taken over by another instance conversation=%s",
                    generation.conversation_id,
                )
                generation.request_cancel(CancelMode.DISCARD)

    async def forget(self, reply: RunningGeneration | LostReply, *, lost: bool) -> None:
        """The reply ended (`lost=False`) or was taken over (`lost=True`: a tombstone)."""
        conversation_id, owner = reply.conversation_id, reply.owner
        self._missing_since.pop((conversation_id, owner), None)
        try:
            await self._forget(
                keys=[self.mark_key(conversation_id), self._registry],
                args=[str(owner), str(conversation_id), "1" if lost else "0", _TOMBSTONE_TTL_MS],
            )
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: could not clear a reply's mark: %s", type(exc).__name__)

    async def lost(self, local: set[uuid.UUID]) -> list[LostReply]:
        """Replies of other instances whose mark has been gone for a whole window."""
        now = time.monotonic()
        try:
            entries = await self._redis.hgetall(self._registry)
            candidates = [
                reply
                for conversation, entry in entries.items()
                if (reply := _parse(conversation, entry)) is not None
                and reply.conversation_id not in local
            ]
            async with self._redis.pipeline(transaction=False) as pipe:
                for reply in candidates:
                    pipe.get(self.mark_key(reply.conversation_id))
                marks: list[bytes | None] = await pipe.execute() if candidates else []
        except REDIS_ERRORS:
            self._missing_since.clear()  # an outage is not evidence: start over
            return []
        seen = set()
        lost: list[LostReply] = []
        for reply, mark in zip(candidates, marks, strict=True):
            key = (reply.conversation_id, reply.owner)
            seen.add(key)
            if mark == str(reply.owner).encode():
                self._missing_since.pop(key, None)
                continue
            first = self._missing_since.setdefault(key, now)
            if now - first >= self._ttl_s:
                lost.append(reply)
        for key in list(self._missing_since):
            if key not in seen:
                del self._missing_since[key]
        return lost
