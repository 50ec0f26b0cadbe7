"""Every typed key of what `create_app` stores in the aiohttp application, in one place.

Both adapters and the wiring read these; the types they name are the service's (or a
protocol of it), so importing this module pulls in no adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as redis_asyncio
import socketio
from aiohttp import web

from server.config import Settings
from server.service.accounts import Accounts
from server.service.address_limits import AddressLimiter
from server.service.chat import ChatService
from server.service.connected_sockets import ConnectedSockets, SessionDisconnector
from server.service.event_limits import EventLimiter
from server.service.generation_tracker import GenerationTracker
from server.service.generations import LocalGenerations
from server.service.metrics import Metrics
from server.service.privacy import PrivacyService
from server.service.profiles import ProfileService
from server.service.shared_chat import SharedChat

__all__ = [
    "ACCOUNTS",
    "ADDRESS_LIMITER",
    "CHAT",
    "CONNECTED",
    "DRAINED",
    "EVENT_LIMITER",
    "GENERATIONS",
    "METRICS",
    "POOL",
    "PRIVACY",
    "PROFILES",
    "PUBSUB_STATE",
    "REDIS",
    "REVOKER",
    "SETTINGS",
    "SHARED",
    "SIO",
    "TRACKER",
]

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# Only when REDIS_URL is set: `REDIS in app` is how the wiring tells one instance from many.
REDIS = web.AppKey("redis", redis_asyncio.Redis)
SIO = web.AppKey("sio", socketio.AsyncServer)
ACCOUNTS = web.AppKey("accounts", Accounts)
CHAT = web.AppKey("chat", ChatService)
PRIVACY = web.AppKey("privacy", PrivacyService)
# Direct and group conversations, and every conversation as a list (REST and events).
SHARED = web.AppKey("shared", SharedChat)
PROFILES = web.AppKey("profiles", ProfileService)
CONNECTED = web.AppKey("connected", ConnectedSockets)
GENERATIONS = web.AppKey("generations", LocalGenerations)
# Set once the instance has drained (see `server.app.drain`): a second drain is a no-op.
DRAINED = web.AppKey("drained", asyncio.Event)
TRACKER = web.AppKey("tracker", GenerationTracker)
REVOKER = web.AppKey("revoker", SessionDisconnector)
# Per-user limits by kind (send, edit, ...): the same counters for every transport.
EVENT_LIMITER = web.AppKey("event_limiter", EventLimiter)
# Per-address budgets (connections, registrations), for callers not yet authenticated.
ADDRESS_LIMITER = web.AppKey("address_limiter", AddressLimiter)
METRICS = web.AppKey("metrics", Metrics)
# The state of the Socket.IO pub/sub listener ("ok", "listener stopped", ...), for health.
PUBSUB_STATE: web.AppKey[Callable[[], Awaitable[str]]] = web.AppKey("pubsub_state")
