"""SDKProvider, the base of the SDK providers: its hooks, seen through the real SDKs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_llm import FakeAnthropicServer, FakeOpenAIServer, collect
from openai.types.chat import ChatCompletionChunk

from ai.base import ChatMessage
from ai.exceptions import AIError, AIUnavailable
from ai.openai_provider import OpenAIProvider
from ai.sdk_provider import ReplyProgress

HELLO = [ChatMessage("user", "Say hello")]


class _StopMarksTheEnd(OpenAIProvider):
    """An API whose end-of-reply event is the chunk with finish_reason "stop"."""

    END_EVENT = True

    def _read(self, event: ChatCompletionChunk, progress: ReplyProgress) -> str | None:
        if event.choices and event.choices[0].finish_reason == "stop":
            progress.ended = True
        return super()._read(event, progress)


async def _stream_end_marked(server: FakeOpenAIServer) -> tuple[list[str], Exception | None]:
    provider = _StopMarksTheEnd("sk-test", server.base_url, 5.0, 5.0, 2, retry_backoff_s=0.01)
    try:
        return await collect(provider.stream(HELLO, "gpt-4o", max_tokens=8))
    finally:
        await provider.aclose()


async def test_a_reply_with_its_end_event_finishes() -> None:
    async with FakeOpenAIServer(tokens=["a", "b"]) as server:
        assert await _stream_end_marked(server) == (["a", "b"], None)


async def test_a_stream_that_stops_before_its_end_event_is_unavailable() -> None:
    async with FakeOpenAIServer(tokens=["a", "b"], finish_reason="length") as server:
        deltas, error = await _stream_end_marked(server)
    assert deltas == ["a", "b"]
    assert isinstance(error, AIUnavailable)
    assert error.message == "openai stream ended before the reply was complete"
    assert len(server.requests) == 1  # text was streamed: never retried


async def test_a_stream_cut_before_any_text_is_retried() -> None:
    async with FakeOpenAIServer(tokens=[], finish_reason="length") as server:
        deltas, error = await _stream_end_marked(server)
    assert (deltas, type(error)) == ([], AIUnavailable)
    assert len(server.requests) == 3  # the first try and max_retries=2 retries


@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_a_closed_provider_sends_nothing(
    make_openai: Callable[..., Any], make_anthropic: Callable[..., Any], which: str
) -> None:
    server_cls = FakeOpenAIServer if which == "openai" else FakeAnthropicServer
    make = make_openai if which == "openai" else make_anthropic
    async with server_cls() as server:
        provider = make(server.base_url)
        await provider.aclose()
        model = "gpt-4o" if which == "openai" else "claude-x"
        deltas, error = await collect(provider.stream(HELLO, model, max_tokens=8))
    assert deltas == []
    assert isinstance(error, AIError)
    assert server.requests == []
