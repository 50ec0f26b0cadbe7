"""OpenAIProvider against a local server speaking the chat-completions streaming format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from fake_llm import FakeOpenAIServer, collect

from ai.base import ChatMessage, FinishReason
from ai.exceptions import AIProviderError, AIRateLimited, AITimeout, AIUnavailable
from ai.openai_provider import OpenAIProvider, uses_max_completion_tokens

MakeOpenAI = Callable[..., OpenAIProvider]
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello")]


async def test_streams_tokens_and_sends_the_conversation(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(tokens=["Hel", "lo", " there"]) as server:
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o-mini", max_tokens=64)
        deltas, error = await collect(stream)
    assert error is None
    assert deltas == ["Hel", "lo", " there"]
    assert stream.finish_reason is FinishReason.FINISHED
    body = server.requests[0].body
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert server.requests[0].api_key == "sk-test"
    assert (server.completed, server.disconnects) == (1, 0)


async def test_empty_and_null_deltas_and_choiceless_chunks_are_skipped(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(tokens=["a", "", "b", ""], empty_deltas=True) as server:
        deltas, error = await collect(
            make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        )
    assert error is None
    assert deltas == ["a", "b"]


async def test_length_finish_reason(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(tokens=["x", "y"], finish_reason="length") as server:
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=2)
        deltas, error = await collect(stream)
    assert (deltas, error) == (["x", "y"], None)
    assert stream.finish_reason is FinishReason.LENGTH


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5"])
async def test_reasoning_models_get_max_completion_tokens(
    make_openai: MakeOpenAI, model: str
) -> None:
    assert uses_max_completion_tokens(model)
    async with FakeOpenAIServer() as server:
        _, error = await collect(make_openai(server.base_url).stream(HELLO, model, max_tokens=77))
    assert error is None
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 77
    assert "max_tokens" not in body


async def test_rate_limit_then_success_is_retried_before_the_first_token(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(fail_first=1, fail_status=429, retry_after="0") as server:
        deltas, error = await collect(
            make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        )
    assert error is None
    assert "".join(deltas) == "Hello, world!"
    assert len(server.requests) == 2


async def test_retry_after_is_honoured(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(fail_first=1, retry_after="0.3") as server:
        started = time.monotonic()
        _, error = await collect(make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8))
        elapsed = time.monotonic() - started
    assert error is None
    assert elapsed >= 0.28


async def test_retry_after_is_capped(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(fail_first=1, retry_after="120") as server:
        provider = make_openai(server.base_url, retry_after_cap_s=0.05)
        async with asyncio.timeout(30):  # far short of the 120 s asked for: capped
            _, error = await collect(provider.stream(HELLO, "gpt-4o", max_tokens=8))
    assert error is None


async def test_rate_limit_retries_exhausted(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(fail_first=99, retry_after="0") as server:
        stream = make_openai(server.base_url, max_retries=1).stream(HELLO, "gpt-4o", max_tokens=8)
        deltas, error = await collect(stream)
    assert isinstance(error, AIRateLimited)
    assert error.code == "AI_RATE_LIMITED"
    assert error.status == 429
    assert error.retry_after_s == 0
    assert deltas == []
    assert stream.finish_reason is FinishReason.ERROR
    assert len(server.requests) == 2


async def test_server_errors_with_retries_exhausted_are_unavailable(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(fail_first=99, fail_status=500, retry_after=None) as server:
        _, error = await collect(make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8))
    assert isinstance(error, AIUnavailable)
    assert error.status == 500
    assert len(server.requests) == 3  # the first try and max_retries=2 retries


async def test_client_errors_are_not_retried(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(fail_first=99, fail_status=400) as server:
        _, error = await collect(make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8))
    assert isinstance(error, AIProviderError)
    assert error.code == "AI_ERROR"
    assert len(server.requests) == 1


async def test_mid_stream_error_after_tokens_is_raised_and_not_retried(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(error_after=2) as server:
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        deltas, error = await collect(stream)
    assert deltas == ["Hello", ","]
    assert isinstance(error, AIUnavailable)  # the error object's type is server_error
    assert stream.finish_reason is FinishReason.ERROR
    assert len(server.requests) == 1


async def test_mid_stream_error_of_another_type_is_a_provider_error(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(error_after=1, error_type="invalid_request_error") as server:
        deltas, error = await collect(
            make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        )
    assert deltas == ["Hello"]
    assert isinstance(error, AIProviderError)


async def test_mid_stream_error_before_the_first_token_is_retried(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(error_after=0) as server:
        deltas, error = await collect(
            make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        )
    assert deltas == []
    assert isinstance(error, AIUnavailable)
    assert len(server.requests) == 3


async def test_connection_cut_mid_stream_is_unavailable(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(cut_after=2) as server:
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=8)
        deltas, error = await collect(stream)
    assert deltas == ["Hello", ","]
    assert isinstance(error, AIUnavailable)
    assert len(server.requests) == 1


async def test_unreachable_server_is_unavailable(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer() as server:
        base_url = server.base_url  # the port is free again once the server has stopped
    _, error = await collect(make_openai(base_url).stream(HELLO, "gpt-4o", max_tokens=8))
    assert isinstance(error, AIUnavailable)


async def test_stall_mid_stream_times_out_and_drops_the_connection(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(stall_after=2) as server:  # silent for an hour
        provider = make_openai(server.base_url, timeout_s=0.3)
        async with asyncio.timeout(30):
            deltas, error = await collect(provider.stream(HELLO, "gpt-4o", max_tokens=8))
        assert deltas == ["Hello", ","]
        assert isinstance(error, AITimeout)
        await asyncio.wait_for(server.disconnected.wait(), 10)


async def test_stall_before_the_first_token_times_out(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(stall_after=0) as server:
        # The request's own timeout is far longer: only the first-token one ends this early.
        provider = make_openai(server.base_url, first_token_timeout_s=0.25, timeout_s=120.0)
        async with asyncio.timeout(30):
            deltas, error = await collect(provider.stream(HELLO, "gpt-4o", max_tokens=8))
    assert deltas == []
    assert isinstance(error, AITimeout)
    assert len(server.requests) == 1  # a timeout is not retried


async def test_cancel_event_stops_the_stream_and_the_server_sees_the_client_leave(
    make_openai: MakeOpenAI,
) -> None:
    async with FakeOpenAIServer(tokens=["t"] * 200, token_delay_s=0.02) as server:
        cancel = asyncio.Event()
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=500, cancel=cancel)
        deltas: list[str] = []
        async for delta in stream:
            deltas.append(delta)
            if len(deltas) == 3:
                cancel.set()
        assert deltas == ["t"] * 3
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)
        assert server.completed == 0


async def test_cancel_event_interrupts_a_stalled_stream_at_once(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(stall_after=1) as server:
        cancel = asyncio.Event()
        provider = make_openai(server.base_url, timeout_s=120.0)
        stream = provider.stream(HELLO, "gpt-4o", max_tokens=8, cancel=cancel)
        assert await anext(stream) == "Hello"
        asyncio.get_running_loop().call_later(0.1, cancel.set)
        # Blocked on the silent server until cancelled: not until the 120 s timeout.
        async with asyncio.timeout(30):
            deltas, error = await collect(stream)
        assert (deltas, error) == ([], None)
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)


async def test_aclose_from_another_task_stops_the_reader(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(tokens=["t"] * 200, token_delay_s=0.02) as server:
        stream = make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=500)
        deltas: list[str] = []
        first = asyncio.Event()

        async def read() -> None:
            async for delta in stream:
                deltas.append(delta)
                first.set()

        reader = asyncio.create_task(read())
        await first.wait()
        await stream.aclose()  # the reader is now blocked waiting for the next chunk
        await asyncio.wait_for(reader, 10)
        assert 0 < len(deltas) < 200
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)
        await stream.aclose()  # idempotent
        assert stream.finish_reason is FinishReason.STOPPED


async def test_aclose_after_partial_reading_drops_the_connection(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(tokens=["t"] * 200, token_delay_s=0.01) as server:
        async with make_openai(server.base_url).stream(HELLO, "gpt-4o", max_tokens=500) as stream:
            assert await anext(stream) == "t"
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_compatible_base_url_without_an_api_key(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(tokens=["ok"]) as server:
        stream = make_openai(server.base_url, api_key=None).stream(HELLO, "llama3", max_tokens=8)
        deltas, error = await collect(stream)
    assert (deltas, error) == (["ok"], None)
    assert server.requests[0].body["model"] == "llama3"
    assert server.requests[0].api_key == "not-needed"


async def test_wrong_key_is_a_provider_error(make_openai: MakeOpenAI) -> None:
    async with FakeOpenAIServer(require_api_key="sk-right") as server:
        stream = make_openai(server.base_url, api_key="sk-wrong").stream(
            HELLO, "gpt-4o", max_tokens=8
        )
        _, error = await collect(stream)
    assert isinstance(error, AIProviderError)
    assert error.status == 401


def test_unconfigured_provider_is_unavailable() -> None:
    with pytest.raises(AIUnavailable):
        OpenAIProvider(None, None, 1.0, 1.0, 0)
