"""python-socketio's Redis listener, reconnecting in a second and saying when it missed.

While the listener is disconnected, every event other instances publish (tokens, other
tabs' messages) is lost for this instance's sockets: Redis pub/sub keeps nothing. The
stock listener also backs off to 1, 2, 4 ... 60 s between attempts, so a 3-second Redis
restart cost up to 4 more seconds of silence. Here it retries after 0.2, 0.5, 1, 2 s
(then every 2 s), and reports the gap: `on_lost` when it first fails, `on_restored` once
it is subscribed again, so the realtime layer can bring its sockets back in step
(`server.realtime.resync`).

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`AsyncRedisManager._redis_listen_with_retries` (what `_listen` iterates), `_redis_connect`,
`pubsub`, `channel`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["ListenerGapHooks", "ReportingRedisListener"]

_LOG = logging.getLogger(__name__)
_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)

ListenerHook = Callable[[], Awaitable[None]]


class ListenerGapHooks:
    """What to run when the listener loses its subscription, and when it has it back."""

    def __init__(self, on_lost: ListenerHook, on_restored: ListenerHook) -> None:
        self.on_lost = on_lost
        self.on_restored = on_restored


class ReportingRedisListener:
    """Mixin for `socketio.AsyncRedisManager` (listed before it)."""

    _gap_hooks: ListenerGapHooks | None = None
    _hook_tasks: set[asyncio.Task[None]]

    def report_listener_gaps(self, hooks: ListenerGapHooks) -> None:
        self._gap_hooks = hooks
        self._hook_tasks = set()

    def _run_hook(self, pick: Callable[[ListenerGapHooks], ListenerHook]) -> None:
        if self._gap_hooks is None:
            return
        task = asyncio.create_task(self._guarded(pick(self._gap_hooks)))
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    @staticmethod
    async def _guarded(hook: ListenerHook) -> None:
        try:
            await hook()
        except Exception:  # a hook must never stop the listener
            _LOG.exception("pub/sub listener hook failed")

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        attempt = 0
        missed = False
        while True:
            try:
                self._redis_connect()  # type: ignore[attr-defined]
                await self.pubsub.subscribe(self.channel)  # type: ignore[attr-defined]
                if missed:
                    missed = False
                    _LOG.warning("redis pub/sub listener subscribed again")
                    self._run_hook(lambda hooks: hooks.on_restored)
                attempt = 0
                async for message in self.pubsub.listen():  # type: ignore[attr-defined]
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not missed:
                    missed = True
                    _LOG.warning(
                        "redis pub/sub listener lost (%s); reconnecting", type(exc).__name__
                    )
                    self._run_hook(lambda hooks: hooks.on_lost)
                await asyncio.sleep(_RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S) - 1)])
                attempt += 1
