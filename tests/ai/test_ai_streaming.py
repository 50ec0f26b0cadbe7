"""ManagedReplyStream with hand-written attempts: retries, mapping, cancellation rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from fake_llm import collect

from ai.base import FinishReason
from ai.exceptions import AIError, AIProviderError, AIRateLimited, AITimeout, AIUnavailable
from ai.streaming import ManagedReplyStream, StreamPolicy

Chunks = AsyncGenerator[str | FinishReason, None]


class _Script:
    """Attempts that fail with the queued errors, then stream `tokens`."""

    def __init__(self, errors: list[BaseException], tokens: list[str], *, fail_after: int = 0):
        self.errors = errors
        self.tokens = tokens
        self.fail_after = fail_after
        self.started = 0
        self.closed = 0

    async def attempt(self) -> Chunks:
        self.started += 1
        try:
            for index, token in enumerate(self.tokens):
                if self.errors and index == self.fail_after:
                    raise self.errors.pop(0)
                yield token
                await asyncio.sleep(0)
            if self.errors:
                raise self.errors.pop(0)
            yield FinishReason.FINISHED
        finally:
            self.closed += 1


def _mapper(exc: BaseException) -> AIError:
    return AIUnavailable(f"mapped {type(exc).__name__}")


def _stream(
    script: _Script, *, retries: int = 2, cancel: asyncio.Event | None = None, **policy: float
) -> ManagedReplyStream:
    return ManagedReplyStream(
        script.attempt,
        provider="test",
        policy=StreamPolicy(max_retries=retries, backoff_base_s=0.001, **policy),
        map_error=_mapper,
        cancel=cancel,
    )


async def test_finish_reason_is_only_known_at_the_end() -> None:
    stream = _stream(_Script([], ["a", "b"]))
    assert not stream.done
    with pytest.raises(RuntimeError):
        _ = stream.finish_reason
    assert await collect(stream) == (["a", "b"], None)
    assert stream.done and stream.finish_reason is FinishReason.FINISHED


async def test_foreign_exceptions_are_mapped() -> None:
    script = _Script([KeyError("boom")], ["a"], fail_after=1)
    deltas, error = await collect(_stream(script))
    assert deltas == ["a"]
    assert isinstance(error, AIUnavailable) and error.message == "mapped KeyError"
    assert script.closed == 1


async def test_retryable_errors_before_the_first_token_are_retried() -> None:
    script = _Script([AIRateLimited("slow down", retry_after_s=0), AIUnavailable("down")], ["a"])
    assert await collect(_stream(script)) == (["a"], None)
    assert script.started == 3
    assert script.closed == 3


async def test_provider_errors_and_timeouts_are_not_retried() -> None:
    for error in (AIProviderError("bad request"), AITimeout("slow")):
        script = _Script([error], ["a"])
        assert await collect(_stream(script)) == ([], error)
        assert script.started == 1


async def test_nothing_is_retried_after_the_first_token() -> None:
    script = _Script([AIUnavailable("down")], ["a", "b"], fail_after=1)
    stream = _stream(script)
    deltas, error = await collect(stream)
    assert deltas == ["a"]
    assert isinstance(error, AIUnavailable)
    assert script.started == 1
    assert stream.finish_reason is FinishReason.ERROR


async def test_first_token_timeout_is_an_ai_timeout() -> None:
    async def silent() -> Chunks:
        await asyncio.sleep(10)
        yield "late"

    stream = ManagedReplyStream(
        silent,
        provider="test",
        policy=StreamPolicy(first_token_timeout_s=0.05),
        map_error=_mapper,
    )
    deltas, error = await collect(stream)
    assert deltas == [] and isinstance(error, AITimeout)
    assert "first token" in str(error)


async def test_a_foreign_timeout_error_is_not_taken_for_ours() -> None:
    script = _Script([TimeoutError()], ["a"], fail_after=1)
    _, error = await collect(_stream(script, first_token_timeout_s=5, idle_timeout_s=5))
    assert isinstance(error, AIUnavailable) and error.message == "mapped TimeoutError"


async def test_task_cancellation_during_a_read_is_not_swallowed() -> None:
    closed = asyncio.Event()
    reading = asyncio.Event()

    async def stuck() -> Chunks:
        try:
            yield "a"
            reading.set()  # the reader asked for the next chunk, which never comes
            await asyncio.sleep(10)
            yield FinishReason.FINISHED
        finally:
            closed.set()

    stream = ManagedReplyStream(stuck, provider="t", policy=StreamPolicy(), map_error=_mapper)
    task = asyncio.create_task(collect(stream))
    await asyncio.wait_for(reading.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.finish_reason is FinishReason.STOPPED
    assert closed.is_set()


async def test_cancel_event_does_not_cancel_the_consumer_outside_reads() -> None:
    cancel = asyncio.Event()
    stream = _stream(_Script([], ["a", "b", "c"]), cancel=cancel)
    assert await anext(stream) == "a"
    cancel.set()
    await asyncio.sleep(0.01)  # the consumer is busy elsewhere: it must not be cancelled
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert stream.finish_reason is FinishReason.STOPPED


async def test_two_readers_are_refused() -> None:
    async def slow() -> Chunks:
        await asyncio.sleep(0.05)
        yield "a"
        yield FinishReason.FINISHED

    stream = ManagedReplyStream(slow, provider="t", policy=StreamPolicy(), map_error=_mapper)
    first = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await anext(stream)
    assert await first == "a"
    await stream.aclose()
    assert stream.finish_reason is FinishReason.STOPPED


async def test_aclose_before_iterating_starts_nothing() -> None:
    script = _Script([], ["a"])
    stream = _stream(script)
    await stream.aclose()
    assert await collect(stream) == ([], None)
    assert script.started == 0
    assert stream.finish_reason is FinishReason.STOPPED
