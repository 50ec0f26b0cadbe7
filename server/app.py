"""`create_app(settings)`: builds everything; importing this module starts nothing.

Connections (PostgreSQL pool, Redis, AI clients) open in aiohttp's `cleanup_ctx` and
close there, in reverse order, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import redis.asyncio as redis_asyncio
import redis.exceptions
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import crypto
import storage
from ai import ProviderRegistry
from server.appkeys import (
    ACCOUNTS,
    ADDRESS_LIMITER,
    CHAT,
    CONNECTED,
    DRAINED,
    EVENT_LIMITER,
    GENERATIONS,
    METRICS,
    POOL,
    PRIVACY,
    PROFILES,
    PUBSUB_STATE,
    REDIS,
    REVOKER,
    SETTINGS,
    SHARED,
    SIO,
    TRACKER,
)
from server.config import Settings
from server.realtime.broadcaster import SocketIOBroadcaster
from server.realtime.engine.fanout import FastEmitManager, FastRedisManager
from server.realtime.engine.pubsub_listener import ListenerGapHooks
from server.realtime.engine.pubsub_probe import pubsub_listener_state
from server.realtime.engine.socket_server import ChatSocketServer
from server.realtime.engine.wire_packet import WirePacket
from server.realtime.presence import LocalPresence, Presence, RedisPresence
from server.realtime.resync import MissedEventsResync
from server.realtime.revocation import SessionRevoker
from server.realtime.scca_namespace import ChatNamespace
from server.realtime.socket_admission import SocketAdmission
from server.rest.auth import auth_routes
from server.rest.browser import cors_headers, cors_preflight_middleware
from server.rest.conversations import conversation_routes
from server.rest.docs import docs_routes
from server.rest.headers import security_headers
from server.rest.health import health_routes
from server.rest.http import error_middleware
from server.rest.metrics import metrics_handler
from server.rest.privacy import privacy_routes
from server.service.accounts import Accounts, session_key_sweep_loop
from server.service.address_limits import AddressLimiter
from server.service.chat import ChatService
from server.service.connected_sockets import ConnectedSockets
from server.service.event_limits import EventLimiter
from server.service.generation_tracker import (
    GenerationTracker,
    LocalTracker,
    RedisTracker,
    control_channel,
)
from server.service.generations import LocalGenerations
from server.service.key_names import KeyNames
from server.service.lost_replies import LostReplies
from server.service.metrics import Metrics
from server.service.password_throttle import LocalFailures, PasswordThrottle, RedisFailures
from server.service.privacy import PrivacyService, purge_loop
from server.service.profiles import ProfileService
from server.service.ratelimit import LocalCounter, RateCounter, RedisCounter
from server.service.replies import ReplyRunner
from server.service.sealed_channel import SealedChannel
from server.service.sealed_mirror import SealedMirror
from server.service.shared_chat import GroupLimits, SharedChat

__all__ = ["create_app", "drain", "password_throttle"]

_LOG = logging.getLogger(__name__)


def database_dsn(settings: Settings) -> str:
    """The application role's DSN: `APP_DATABASE_URL`, or `DATABASE_URL` with the role swapped."""
    if settings.app_database_url:
        return settings.app_database_url
    if not settings.database_url:
        raise RuntimeError("no database configured (run.py starts an embedded one)")
    return storage.app_dsn(
        settings.database_url, app_role=settings.db_app_role, app_password=settings.db_app_password
    )


def _seal(settings: Settings, purpose: bytes) -> crypto.ChannelSeal:
    """What this instance seals for Redis with; it opens what any accepted secret sealed."""
    return crypto.ChannelSeal(
        settings.secret_key, purpose=purpose, accepted=settings.extra_secret_keys
    )


def _socket_server(settings: Settings, metrics: Metrics) -> ChatSocketServer:
    manager: FastEmitManager = (
        FastRedisManager(
            settings.redis_url,
            channel=settings.redis_channel,
            # Every message between instances is sealed; forged and replayed ones dropped.
            codec=SealedChannel(
                _seal(settings, b"socketio"),
                settings.redis_channel,
                on_reject=metrics.sealed_rejected_on("socketio"),
            ),
            # A Redis that stops answering must not block every emit.
            redis_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        )
        if settings.redis_url
        else FastEmitManager()
    )
    return ChatSocketServer(
        handshake_timeout_s=settings.handshake_timeout_s,
        serializer=WirePacket,
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=list(settings.cors_origins),
        cors_credentials=True,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
        max_http_buffer_size=settings.max_http_buffer_size,
        transports=["polling", "websocket"],
        logger=False,
        engineio_logger=False,
    )


def _add_gauges(metrics: Metrics, app: web.Application, sio: ChatSocketServer) -> None:
    metrics.gauge(
        "scca_connected_sockets", "Sockets connected to this instance", lambda: len(app[CONNECTED])
    )
    metrics.gauge(
        "scca_generations_running",
        "Replies being generated on this instance",
        lambda: len(app[GENERATIONS].all()),
    )
    metrics.gauge(
        "scca_fanout_direct_frames",
        "Frames written straight into websockets",
        lambda: sio.manager.direct_frames,
    )
    metrics.gauge(
        "scca_fanout_queued_frames",
        "Frames sent through engine.io queues",
        lambda: sio.manager.queued_frames,
    )


async def _serve_metrics(request: web.Request) -> web.StreamResponse:
    app = request.app

    async def database() -> None:
        async with app[POOL].acquire() as con:
            await con.fetchval("SELECT 1")

    redis_ping = app[REDIS].ping if REDIS in app else None
    handler = metrics_handler(app[METRICS], database, redis_ping)
    return await handler(request)


def create_app(settings: Settings) -> web.Application:
    """The whole server as an aiohttp application."""
    app = web.Application(
        middlewares=[cors_preflight_middleware, error_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app.on_response_prepare.append(cors_headers)
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    metrics = Metrics()
    sio = _socket_server(settings, metrics)
    app[SIO] = sio
    app[PUBSUB_STATE] = lambda: pubsub_listener_state(sio)
    app[CONNECTED] = ConnectedSockets()
    app[GENERATIONS] = LocalGenerations()
    app[METRICS] = metrics
    _add_gauges(metrics, app, sio)
    sio.report_frame_faults(metrics.frame_refused)
    sio.attach(app, socketio_path=settings.engineio_path)
    # socket.io-client adds a trailing slash by default; the seed's server did not
    # require one (addTrailingSlash: false). Accept both.
    handler = sio.eio.handle_request
    bare = "/" + settings.engineio_path
    app.router.add_get(bare, handler)
    app.router.add_post(bare, handler)
    app.router.add_route("OPTIONS", bare, handler)
    app.add_routes(health_routes())
    app.add_routes(auth_routes())
    # Before conversation_routes(): it serves DELETE /api/conversations/{id} (?hard=true).
    app.add_routes(privacy_routes())
    app.add_routes(conversation_routes())
    app.add_routes(docs_routes())
    app.router.add_get("/metrics", _serve_metrics)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_services)
    app[DRAINED] = asyncio.Event()
    app.on_shutdown.append(drain)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await storage.create_pool(
        database_dsn(settings), min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    app[POOL] = pool
    yield
    await pool.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis_url:
        yield
        return
    # After Redis restarts, the pool still holds connections to the old process: the
    # first command on each fails with ConnectionError. One immediate retry on a fresh
    # connection (pipelines and scripts included) keeps that from reading as an outage.
    client = redis_asyncio.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=10,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[redis.exceptions.ConnectionError],
    )
    app[REDIS] = client
    yield
    await client.aclose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    registry = ProviderRegistry(settings.ai)
    if registry.uses_scripted_default:
        _LOG.warning(
            "NO AI PROVIDER CONFIGURED: replies come from the local scripted model. "
            "Set OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY for real replies."
        )
    else:
        model = registry.default_model
        provider = registry.provider_name_for(model)
        _LOG.info("new conversations are answered by %s (%s)", model, provider)
    throttle = password_throttle(settings, app.get(REDIS))
    accounts = Accounts(
        app[POOL],
        settings.secret_key,
        token_ttl=timedelta(seconds=settings.access_token_ttl_s),
        throttle=throttle,
        accepted_secrets=settings.extra_secret_keys,
    )
    counter: RateCounter = (
        # One deployment's budgets: another sharing this Redis counts its own.
        RedisCounter(app[REDIS], prefix=f"{settings.redis_channel}:rl:")
        if REDIS in app
        else LocalCounter()
    )
    app[ACCOUNTS] = accounts
    app[EVENT_LIMITER] = EventLimiter(counter, settings.limits)
    app[ADDRESS_LIMITER] = AddressLimiter(
        counter,
        settings.limits,
        settings.rate_limit_allowlist,
        app[METRICS],
        KeyNames(settings.secret_key, "address-limits"),
    )
    admission = SocketAdmission(app[ADDRESS_LIMITER], trust_proxy=settings.trust_proxy)
    # Every new Engine.IO session, on every socket path, spends its address's budget.
    app[SIO].admit_handshakes(admission.handshake)
    tracker: GenerationTracker = (
        _redis_tracker(app) if REDIS in app else LocalTracker(app[GENERATIONS])
    )
    app[TRACKER] = tracker
    broadcaster = SocketIOBroadcaster(app[SIO], app[METRICS])
    replies = ReplyRunner(
        app[POOL],
        registry,
        broadcaster,
        app[GENERATIONS],
        tracker,
        app[METRICS],
        lock_ttl_s=settings.generation_lock_ttl_s,
        coalesce_ms=settings.coalesce_ms,
        system_prompt=settings.ai.system_prompt,
        context_budget_tokens=settings.ai.context_budget_tokens,
        max_reply_tokens=settings.ai.max_reply_tokens,
    )
    lost_replies = LostReplies(app[POOL], tracker, broadcaster, app[METRICS])
    shared = SharedChat(
        app[POOL],
        broadcaster,
        limiter=app[EVENT_LIMITER],
        limits=GroupLimits(
            members_per_group=settings.max_group_members,
            groups_per_user=settings.max_groups_per_user,
        ),
        default_model=registry.default_model,
    )
    app[SHARED] = shared
    app[PROFILES] = ProfileService(app[POOL], limiter=app[EVENT_LIMITER])
    chat = ChatService(
        app[POOL],
        registry,
        broadcaster,
        tracker,
        replies,
        lost_replies,
        limiter=app[EVENT_LIMITER],
        max_conversations_per_user=settings.max_conversations_per_user,
        lock_ttl_s=settings.generation_lock_ttl_s,
        shared=shared,
    )
    app[CHAT] = chat
    app[PRIVACY] = PrivacyService(
        app[POOL],
        tracker,
        limiter=app[EVENT_LIMITER],
        throttle=throttle,
        batch_size=settings.privacy_batch_size,
    )
    presence: Presence = (
        RedisPresence(
            app[REDIS], app[CONNECTED], stale_after_s=settings.session_check_interval_s * 4
        )
        if REDIS in app
        else LocalPresence(app[CONNECTED])
    )
    revoker = SessionRevoker(app[SIO], app[CONNECTED], accounts, presence)
    app[REVOKER] = revoker
    namespace = ChatNamespace(
        accounts,
        chat,
        app[CONNECTED],
        app[EVENT_LIMITER],
        app[METRICS],
        presence,
        admission,
        max_sockets_per_user=settings.max_sockets_per_user,
        allow_query_tokens=settings.allow_query_tokens,
    )
    app[SIO].register_namespace(namespace)
    manager = app[SIO].manager
    if isinstance(manager, FastRedisManager):
        resync = MissedEventsResync(namespace, chat, app[METRICS])
        manager.report_listener_gaps(ListenerGapHooks(resync.gap_opened, resync.gap_closed))
    tasks = _background_tasks(app, revoker)
    tasks.append(asyncio.create_task(lost_replies.run(), name="lost-replies"))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await registry.aclose()


def password_throttle(settings: Settings, client: redis_asyncio.Redis | None) -> PasswordThrottle:
    """The guard on password guesses: counts shared through Redis when there is one."""
    return PasswordThrottle(
        RedisFailures(client, prefix=f"{settings.redis_channel}:pw:")
        if client is not None
        else LocalFailures(),
        settings.password_throttle,
        names=KeyNames(settings.secret_key, "password-throttle"),
        allowlist=settings.rate_limit_allowlist,
    )


def _redis_tracker(app: web.Application) -> RedisTracker:
    settings, metrics = app[SETTINGS], app[METRICS]
    # One deployment's keys: another sharing this Redis never takes its replies over.
    prefix = f"{settings.redis_channel}:"
    return RedisTracker(
        app[REDIS],
        app[GENERATIONS],
        control=SealedChannel(
            _seal(settings, b"generation-control"),
            control_channel(prefix),
            on_reject=metrics.sealed_rejected_on("generation-control"),
        ),
        mirror=SealedMirror(
            _seal(settings, b"generation-mirror"),
            on_reject=metrics.sealed_rejected_on("generation-mirror"),
        ),
        ttl_s=settings.generation_lock_ttl_s,
        prefix=prefix,
    )


def _background_tasks(app: web.Application, revoker: SessionRevoker) -> list[asyncio.Task[None]]:
    """The instance's loops: the session sweeps, the generation control channel, the purge."""
    settings = app[SETTINGS]
    return [
        asyncio.create_task(revoker.run(settings.session_check_interval_s), name="session-sweep"),
        asyncio.create_task(
            session_key_sweep_loop(app[ACCOUNTS], settings.session_key_sweep_interval_s),
            name="session-key-sweep",
        ),
        asyncio.create_task(app[TRACKER].run(), name="generation-control"),
        asyncio.create_task(
            purge_loop(
                app[PRIVACY],
                settings.purge_interval_s,
                timedelta(days=settings.purge_retention_days),
            ),
            name="purge",
        ),
    ]


async def drain(app: web.Application) -> None:
    """Stop this instance on our terms, while every connection still reads and writes.

    New replies (sends, edits) are refused with UNAVAILABLE and a retry hint; every other
    event is answered as usual; running replies may finish (bounded by SHUTDOWN_GRACE_S);
    then every connection is closed at the transport level, so its client reconnects to
    another instance instead of waiting for a timeout. `server.main` calls this on
    SIGTERM right after it stops listening, before aiohttp's own shutdown, which stops
    reading from open connections; it is also aiohttp's `on_shutdown` hook (a no-op
    when it already ran).
    """
    if app[DRAINED].is_set():
        return
    app[CHAT].close()
    await app[GENERATIONS].drain(app[SETTINGS].shutdown_grace_s)
    # A send's ack leaves from its event handler just after its reply ended.
    await asyncio.sleep(0.2)
    await app[SIO].close_transports()
    app[DRAINED].set()
