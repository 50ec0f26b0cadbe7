"""Typed keys of what `create_app` stores in the aiohttp application."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio
import socketio
from aiohttp import web

from server.accounts import Accounts
from server.chat import ChatService
from server.config import Settings
from server.metrics import Metrics
from server.presence import ConnectedSockets
from server.ratelimit import LoginLimiter
from server.revocation import SessionRevoker

__all__ = [
    "ACCOUNTS",
    "CHAT",
    "CONNECTED",
    "LOGIN_LIMITER",
    "METRICS",
    "POOL",
    "REDIS",
    "REVOKER",
    "SETTINGS",
    "SIO",
]

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", redis_asyncio.Redis)
SIO = web.AppKey("sio", socketio.AsyncServer)
ACCOUNTS = web.AppKey("accounts", Accounts)
CHAT = web.AppKey("chat", ChatService)
CONNECTED = web.AppKey("connected", ConnectedSockets)
REVOKER = web.AppKey("revoker", SessionRevoker)
LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)
METRICS = web.AppKey("metrics", Metrics)
