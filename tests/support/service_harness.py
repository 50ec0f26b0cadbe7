"""The chat service without any transport: a recording broadcaster and the local tracker.

For fast unit tests of `server.service`: the real PostgreSQL (a temporary database), the
real crypto and the scripted model, and instead of sockets a `RecordingBroadcaster` that
keeps every event the service would have sent, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import msgspec
from live_server import test_settings
from pg import TempDatabase

import storage
from ai import ProviderRegistry
from protocol.names import ServerEvent
from protocol.socket_events import AiToken
from server.config import Settings
from server.service.accounts import Accounts
from server.service.chat import ChatService
from server.service.event_limits import EventLimiter
from server.service.generation_tracker import LocalTracker
from server.service.generations import LocalGenerations, RunningGeneration
from server.service.identity import Identity
from server.service.key_names import KeyNames
from server.service.lost_replies import LostReplies
from server.service.metrics import Metrics
from server.service.password_throttle import LocalFailures, PasswordThrottle
from server.service.privacy import PrivacyService
from server.service.profiles import ProfileService
from server.service.ratelimit import LocalCounter
from server.service.replies import ReplyRunner
from server.service.shared_chat import GroupLimits, SharedChat

__all__ = ["ChatHarness", "Recorded", "RecordingBroadcaster", "chat_harness"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One delivery: to a conversation's room (`sid` = the skipped socket), to a socket,
    or to every socket of a user (`user_id`)."""

    event: ServerEvent
    payload: msgspec.Struct
    conversation_id: uuid.UUID | None = None
    sid: str | None = None
    with_partial: bool = True
    user_id: uuid.UUID | None = None


@dataclass
class RecordingBroadcaster:
    """The service's `Broadcaster`, keeping what it was asked to deliver."""

    sent: list[Recorded] = field(default_factory=list)

    async def to_conversation(
        self,
        conversation_id: uuid.UUID,
        event: ServerEvent,
        payload: msgspec.Struct,
        *,
        skip_sid: str | None = None,
    ) -> None:
        self.sent.append(Recorded(event, payload, conversation_id=conversation_id, sid=skip_sid))

    async def to_socket(self, sid: str, event: ServerEvent, payload: msgspec.Struct) -> None:
        self.sent.append(Recorded(event, payload, sid=sid))

    async def to_user(
        self, user_id: uuid.UUID, event: ServerEvent, payload: msgspec.Struct
    ) -> None:
        self.sent.append(Recorded(event, payload, user_id=user_id))

    async def tokens(self, conversation_id: uuid.UUID, full: AiToken, delta: AiToken) -> None:
        self.sent.append(Recorded(ServerEvent.AI_TOKEN, full, conversation_id=conversation_id))
        self.sent.append(
            Recorded(
                ServerEvent.AI_TOKEN, delta, conversation_id=conversation_id, with_partial=False
            )
        )

    def named(self, event: ServerEvent, *, with_partial: bool = True) -> list[msgspec.Struct]:
        return [r.payload for r in self.sent if r.event == event and r.with_partial == with_partial]


@dataclass
class ChatHarness:
    settings: Settings
    pool: asyncpg.Pool
    accounts: Accounts
    chat: ChatService
    generations: LocalGenerations
    broadcast: RecordingBroadcaster
    shared: SharedChat
    profiles: ProfileService

    async def person(self) -> Identity:
        """A new registered user, as their session would authenticate."""
        login = await self.accounts.register(
            f"svc-{uuid.uuid4().hex[:12]}@example.com",
            "correct horse battery",
            ip="127.0.0.1",
            user_agent="tests",
        )
        return await self.accounts.authenticate(login.token)

    async def conversation(self, identity: Identity, model: str = "scripted:5:0") -> uuid.UUID:
        record = await self.chat.create_conversation(identity, title=None, model=model)
        return record.id

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every generation of this harness has ended."""
        tasks = [g.task for g in self.generations.all() if g.task is not None]
        async with asyncio.timeout(timeout):
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def tokens_streamed(generation: RunningGeneration, count: int) -> None:
        """Wait until `generation` has streamed `count` tokens."""
        reached = asyncio.Event()

        def listen(_token: str, _partial: str) -> None:
            if generation.token_index >= count:
                reached.set()

        generation.listeners.append(listen)
        try:
            if generation.token_index < count:
                async with asyncio.timeout(10):
                    await reached.wait()
        finally:
            generation.listeners.remove(listen)


def privacy_service(harness: ChatHarness) -> PrivacyService:
    """The privacy service over the harness's pool, with nothing to cancel elsewhere."""
    tracker = LocalTracker(harness.generations)
    return PrivacyService(harness.pool, tracker, throttle=local_throttle())


def local_throttle() -> PasswordThrottle:
    """A password throttle counting in this process, as one instance without Redis."""
    return PasswordThrottle(LocalFailures(), names=KeyNames(b"t" * 32, "password-throttle"))


@asynccontextmanager
async def chat_harness(db: TempDatabase, **env: str) -> AsyncIterator[ChatHarness]:
    """The service as `create_app` wires it for one instance, minus the transports."""
    settings = test_settings(db.app_dsn, **env)
    pool = await storage.create_pool(db.app_dsn, min_size=1, max_size=5)
    registry = ProviderRegistry(settings.ai)
    generations = LocalGenerations()
    tracker = LocalTracker(generations)
    broadcast = RecordingBroadcaster()
    metrics = Metrics()
    limiter = EventLimiter(LocalCounter(), settings.limits)
    replies = ReplyRunner(
        pool,
        registry,
        broadcast,
        generations,
        tracker,
        metrics,
        lock_ttl_s=settings.generation_lock_ttl_s,
        coalesce_ms=settings.coalesce_ms,
        system_prompt=settings.ai.system_prompt,
        context_budget_tokens=settings.ai.context_budget_tokens,
        max_reply_tokens=settings.ai.max_reply_tokens,
    )
    shared = SharedChat(
        pool,
        broadcast,
        limiter=limiter,
        limits=GroupLimits(
            members_per_group=settings.max_group_members,
            groups_per_user=settings.max_groups_per_user,
        ),
        default_model=registry.default_model,
    )
    chat = ChatService(
        pool,
        registry,
        broadcast,
        tracker,
        replies,
        LostReplies(pool, tracker, broadcast, metrics),
        limiter=limiter,
        max_conversations_per_user=settings.max_conversations_per_user,
        lock_ttl_s=settings.generation_lock_ttl_s,
        shared=shared,
    )
    accounts = Accounts(
        pool,
        settings.secret_key,
        token_ttl=timedelta(seconds=settings.access_token_ttl_s),
        throttle=local_throttle(),
    )
    harness = ChatHarness(
        settings,
        pool,
        accounts,
        chat,
        generations,
        broadcast,
        shared=shared,
        profiles=ProfileService(pool, limiter=limiter),
    )
    try:
        yield harness
    finally:
        await harness.settled(timeout=30)
        await registry.aclose()
        await pool.close()
