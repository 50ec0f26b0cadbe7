"""The ReplyStream every provider returns: timeouts, retries, cancellation, error mapping.

A provider supplies an *attempt*: a factory of async generators that send one request and
yield its non-empty text deltas, then one final `FinishReason`. This module runs attempts:

- Until the first delta, an attempt has `first_token_timeout_s` in total; after that each
  delta must follow the previous one within `idle_timeout_s`. Either expiry is AITimeout.
- Rate limits and unavailability before the first delta are retried up to `max_retries`
  times, after the provider's Retry-After (capped) or an exponential backoff.
- A set cancel event or `aclose()` from another task interrupts the reading task at once,
  the way `asyncio.timeout` does, so a stalled provider cannot delay a cancellation.
  Closing the attempt's generator closes the HTTP response, so the server sees the client
  go away.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from ai.base import FinishReason, ReplyStream
from ai.exceptions import AIError, AIRateLimited, AITimeout, AIUnavailable

__all__ = ["Attempt", "ManagedReplyStream", "StreamPolicy"]

_LOG = logging.getLogger(__name__)

Attempt = Callable[[], AsyncGenerator[str | FinishReason, None]]
"""Starts one request; yields text deltas, then exactly one FinishReason."""


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """Timeouts (None = no limit) and the retry policy of a stream."""

    first_token_timeout_s: float | None = None
    idle_timeout_s: float | None = None
    max_retries: int = 0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    retry_after_cap_s: float = 10.0


class _Stopped(Exception):
    """Internal: the caller asked the stream to stop."""


class ManagedReplyStream(ReplyStream):
    """Runs attempts of one provider request under a StreamPolicy (see module docstring)."""

    def __init__(
        self,
        attempt: Attempt,
        *,
        provider: str,
        policy: StreamPolicy,
        map_error: Callable[[BaseException], AIError],
        cancel: asyncio.Event | None = None,
    ) -> None:
        self._attempt = attempt
        self._provider = provider
        self._policy = policy
        self._map_error = map_error
        self._cancel = cancel
        self._source: AsyncGenerator[str | FinishReason, None] | None = None
        self._finish: FinishReason | None = None
        self._retries = 0
        self._yielded = False
        self._first_deadline: float | None = None
        self._reader: asyncio.Task[object] | None = None
        self._reader_gone: asyncio.Event | None = None
        # Set by the cancel event or aclose(); the reader is only cancelled while it waits
        # on the provider (`_waiting`), never while it is closing a response.
        self._stop_requested = False
        self._waiting = False
        self._interrupting = False
        self._watcher: asyncio.Task[None] | None = None

    @property
    def finish_reason(self) -> FinishReason:
        if self._finish is None:
            raise RuntimeError("the reply stream has not finished yet")
        return self._finish

    @property
    def done(self) -> bool:
        return self._finish is not None

    async def __anext__(self) -> str:
        if self._finish is not None:
            raise StopAsyncIteration
        if self._stop_requested or (self._cancel is not None and self._cancel.is_set()):
            await self._end(FinishReason.STOPPED)
            raise StopAsyncIteration
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("ReplyStream must be iterated inside an asyncio task")
        if self._reader is not None:
            raise RuntimeError("ReplyStream is already being iterated by another task")
        self._reader = task
        self._start_watcher()
        try:
            return await self._next_delta()
        except _Stopped:
            await self._end(FinishReason.STOPPED)
            raise StopAsyncIteration from None
        except asyncio.CancelledError:
            ours = self._interrupting
            self._interrupting = False
            if ours and task.uncancel() == 0:
                await self._end(FinishReason.STOPPED)
                raise StopAsyncIteration from None
            await self._end(FinishReason.STOPPED)
            raise
        finally:
            if self._interrupting:
                # Our cancellation was absorbed below us; undo its count.
                self._interrupting = False
                task.uncancel()
            self._reader = None
            gone, self._reader_gone = self._reader_gone, None
            if gone is not None:
                gone.set()

    async def aclose(self) -> None:
        self._stop_requested = True
        if self._reader is not None and self._reader is not asyncio.current_task():
            if self._reader_gone is None:
                self._reader_gone = asyncio.Event()
            gone = self._reader_gone
            self._interrupt()
            await gone.wait()
        await self._end(FinishReason.STOPPED)

    async def _next_delta(self) -> str:
        loop = asyncio.get_running_loop()
        while True:
            if self._source is None:
                self._source = self._attempt()
                limit = self._policy.first_token_timeout_s
                self._first_deadline = None if limit is None else loop.time() + limit
            if self._yielded:
                idle = self._policy.idle_timeout_s
                deadline = None if idle is None else loop.time() + idle
            else:
                deadline = self._first_deadline
            timeout = asyncio.timeout_at(deadline)
            error: AIError | None = None
            item: str | FinishReason = ""
            self._begin_wait()
            try:
                async with timeout:
                    item = await anext(self._source)
            except StopAsyncIteration:
                item = FinishReason.FINISHED
            except Exception as exc:  # every failure of an attempt becomes an AIError
                if self._stop_requested:
                    raise _Stopped from None
                if isinstance(exc, TimeoutError) and timeout.expired():
                    waited = "the next token" if self._yielded else "the first token"
                    error = AITimeout(f"{self._provider} timed out waiting for {waited}")
                else:
                    error = exc if isinstance(exc, AIError) else self._map_error(exc)
            finally:
                self._waiting = False
            if error is not None:
                await self._fail_attempt(error)
                continue
            if isinstance(item, FinishReason):
                await self._end(item)
                raise StopAsyncIteration
            if item:
                self._yielded = True
                return item

    async def _fail_attempt(self, error: AIError) -> None:
        """Close the failed attempt; sleep before a retry, or end the stream with `error`."""
        await self._close_source()
        delay = self._retry_delay(error)
        if delay is None:
            await self._end(FinishReason.ERROR)
            raise error from None
        self._retries += 1
        _LOG.warning(
            "%s request failed before its first token (%s); retry %d/%d in %.2fs",
            self._provider,
            error.code,
            self._retries,
            self._policy.max_retries,
            delay,
        )
        self._begin_wait()
        try:
            await asyncio.sleep(delay)
        finally:
            self._waiting = False

    def _begin_wait(self) -> None:
        if self._stop_requested:
            raise _Stopped
        self._waiting = True

    def _retry_delay(self, error: AIError) -> float | None:
        policy = self._policy
        if self._yielded or self._retries >= policy.max_retries:
            return None
        if not isinstance(error, AIRateLimited | AIUnavailable):
            return None
        if error.retry_after_s is not None:
            return min(error.retry_after_s, policy.retry_after_cap_s)
        backoff: float = min(policy.backoff_base_s * 2.0**self._retries, policy.backoff_cap_s)
        return backoff * random.uniform(0.5, 1.0)

    async def _end(self, reason: FinishReason) -> None:
        if self._finish is None:
            self._finish = reason
        self._stop_watcher()
        await self._close_source()

    async def _close_source(self) -> None:
        source, self._source = self._source, None
        if source is None:
            return
        try:
            await source.aclose()
        except Exception as exc:  # the reply is over either way; a failed close changes nothing
            _LOG.debug("%s stream close failed: %s", self._provider, type(exc).__name__)

    def _start_watcher(self) -> None:
        if self._cancel is not None and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self._cancel), name=f"ai-cancel-watch-{self._provider}"
            )

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()

    async def _watch(self, cancel: asyncio.Event) -> None:
        await cancel.wait()
        self._stop_requested = True
        self._interrupt()

    def _interrupt(self) -> None:
        """Cancel the reader if it is waiting on the provider; it then ends STOPPED."""
        if self._reader is not None and self._waiting and not self._interrupting:
            self._interrupting = True
            self._reader.cancel()
