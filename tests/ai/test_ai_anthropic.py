"""AnthropicProvider against a local server speaking the Messages streaming format."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from fake_llm import FakeAnthropicServer, collect
from hypothesis import given
from hypothesis import strategies as st

from ai.anthropic_provider import AnthropicProvider, to_anthropic_request
from ai.base import ChatMessage, FinishReason
from ai.exceptions import AIProviderError, AIRateLimited, AITimeout, AIUnavailable

MakeAnthropic = Callable[..., AnthropicProvider]
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello")]


async def test_streams_text_deltas_with_a_separate_system_prompt(
    make_anthropic: MakeAnthropic,
) -> None:
    async with FakeAnthropicServer(tokens=["Hi", "", " there"]) as server:
        stream = make_anthropic(server.base_url).stream(
            HELLO, "claude-3-5-haiku-latest", max_tokens=50
        )
        deltas, error = await collect(stream)
    assert (deltas, error) == (["Hi", " there"], None)
    assert stream.finish_reason is FinishReason.FINISHED
    request = server.requests[0]
    assert request.path == "/v1/messages"
    assert request.api_key == "sk-ant-test"
    assert request.body == {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 50,
        "stream": True,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    assert (server.completed, server.disconnects) == (1, 0)


async def test_roles_are_merged_to_alternate_and_start_with_the_user(
    make_anthropic: MakeAnthropic,
) -> None:
    history = [
        ChatMessage("assistant", "Welcome!"),
        ChatMessage("system", "Rule one."),
        ChatMessage("user", "First"),
        ChatMessage("user", "Second"),
        ChatMessage("assistant", "Answer A"),
        ChatMessage("assistant", ""),
        ChatMessage("assistant", "Answer B"),
        ChatMessage("system", "Rule two."),
        ChatMessage("user", "Third"),
    ]
    async with FakeAnthropicServer() as server:
        _, error = await collect(
            make_anthropic(server.base_url).stream(history, "claude-x", max_tokens=9)
        )
    assert error is None
    body = server.requests[0].body
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {"role": "user", "content": "First\n\nSecond"},
        {"role": "assistant", "content": "Answer A\n\nAnswer B"},
        {"role": "user", "content": "Third"},
    ]


async def test_no_system_field_without_a_system_message(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer() as server:
        messages = [ChatMessage("user", "Hi")]
        _, error = await collect(
            make_anthropic(server.base_url).stream(messages, "claude-x", max_tokens=9)
        )
    assert error is None
    assert "system" not in server.requests[0].body


async def test_a_conversation_without_a_user_message_is_refused(
    make_anthropic: MakeAnthropic,
) -> None:
    provider = make_anthropic("http://127.0.0.1:9")
    with pytest.raises(AIProviderError):
        provider.stream([ChatMessage("assistant", "Hello?")], "claude-x", max_tokens=9)


_turns = st.lists(
    st.builds(
        ChatMessage,
        role=st.sampled_from(["user", "assistant", "system"]),
        content=st.text(alphabet="ab \n", max_size=6),
    ),
    max_size=12,
)


@given(_turns)
def test_reshaped_turns_alternate_and_keep_all_text(messages: list[ChatMessage]) -> None:
    request = to_anthropic_request(messages)
    roles = [role for role, _ in request.turns]
    assert roles[:1] in ([], ["user"])
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert all(text.strip() for _, text in request.turns)
    kept: list[ChatMessage] = []
    for message in messages:
        if not message.content.strip() or message.role == "system":
            continue
        if kept or message.role == "user":
            kept.append(message)
    assert "\n\n".join(text for _, text in request.turns) == "\n\n".join(m.content for m in kept)
    systems = [m.content for m in messages if m.role == "system" and m.content.strip()]
    assert request.system == ("\n\n".join(systems) if systems else None)


async def test_max_tokens_stop_reason_is_length(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(finish_reason="max_tokens") as server:
        stream = make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=4)
        deltas, error = await collect(stream)
    assert error is None and len(deltas) == 4
    assert stream.finish_reason is FinishReason.LENGTH


async def test_rate_limit_then_success(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(fail_first=2, fail_status=429, retry_after="0") as server:
        deltas, error = await collect(
            make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        )
    assert error is None
    assert "".join(deltas) == "Hello, world!"
    assert len(server.requests) == 3


async def test_rate_limit_exhausted(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(fail_first=99, retry_after="7") as server:
        provider = make_anthropic(server.base_url, max_retries=0)
        _, error = await collect(provider.stream(HELLO, "claude-x", max_tokens=9))
    assert isinstance(error, AIRateLimited)
    assert error.retry_after_s == 7
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_exhausted_are_unavailable(
    make_anthropic: MakeAnthropic, status: int
) -> None:
    async with FakeAnthropicServer(fail_first=99, fail_status=status, retry_after=None) as server:
        _, error = await collect(
            make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        )
    assert isinstance(error, AIUnavailable)
    assert error.status == status
    assert len(server.requests) == 3


async def test_overloaded_error_event_mid_stream(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(error_after=2, error_type="overloaded_error") as server:
        stream = make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        deltas, error = await collect(stream)
    assert deltas == ["Hello", ","]
    assert isinstance(error, AIUnavailable)
    assert "overloaded_error" in error.message
    assert stream.finish_reason is FinishReason.ERROR
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("rate_limit_error", AIRateLimited), ("invalid_request_error", AIProviderError)],
)
async def test_other_error_events_mid_stream(
    make_anthropic: MakeAnthropic, error_type: str, expected: type[Exception]
) -> None:
    async with FakeAnthropicServer(error_after=1, error_type=error_type) as server:
        deltas, error = await collect(
            make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        )
    assert deltas == ["Hello"]
    assert type(error) is expected


async def test_error_event_before_the_first_token_is_retried(
    make_anthropic: MakeAnthropic,
) -> None:
    async with FakeAnthropicServer(error_after=0) as server:
        deltas, error = await collect(
            make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        )
    assert deltas == []
    assert isinstance(error, AIUnavailable)
    assert len(server.requests) == 3


async def test_connection_cut_mid_stream_is_unavailable(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(cut_after=3) as server:
        deltas, error = await collect(
            make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=9)
        )
    assert deltas == ["Hello", ",", " world"]
    assert isinstance(error, AIUnavailable)


async def test_stall_times_out_and_drops_the_connection(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(stall_after=1) as server:
        provider = make_anthropic(server.base_url, timeout_s=0.3)
        async with asyncio.timeout(30):  # the server stays silent for an hour
            deltas, error = await collect(provider.stream(HELLO, "claude-x", max_tokens=9))
        assert deltas == ["Hello"]
        assert isinstance(error, AITimeout)
        await asyncio.wait_for(server.disconnected.wait(), 10)


async def test_cancel_event_stops_and_the_server_sees_the_client_leave(
    make_anthropic: MakeAnthropic,
) -> None:
    async with FakeAnthropicServer(tokens=["w"] * 200, token_delay_s=0.02) as server:
        cancel = asyncio.Event()
        provider = make_anthropic(server.base_url)
        stream = provider.stream(HELLO, "claude-x", max_tokens=500, cancel=cancel)
        deltas: list[str] = []
        async for delta in stream:
            deltas.append(delta)
            if len(deltas) == 2:
                cancel.set()
        assert deltas == ["w", "w"]
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)
        assert server.completed == 0


async def test_aclose_stops_and_the_server_sees_the_client_leave(
    make_anthropic: MakeAnthropic,
) -> None:
    async with FakeAnthropicServer(tokens=["w"] * 200, token_delay_s=0.02) as server:
        stream = make_anthropic(server.base_url).stream(HELLO, "claude-x", max_tokens=500)
        assert await anext(stream) == "w"
        await stream.aclose()
        assert stream.finish_reason is FinishReason.STOPPED
        await asyncio.wait_for(server.disconnected.wait(), 10)


async def test_base_url_without_a_key_uses_a_placeholder(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(tokens=["ok"]) as server:
        stream = make_anthropic(server.base_url, api_key=None).stream(
            HELLO, "claude-x", max_tokens=9
        )
        deltas, error = await collect(stream)
    assert (deltas, error) == (["ok"], None)
    assert server.requests[0].api_key == "not-needed"


async def test_wrong_key_is_a_provider_error(make_anthropic: MakeAnthropic) -> None:
    async with FakeAnthropicServer(require_api_key="sk-ant-right") as server:
        provider = make_anthropic(server.base_url, api_key="sk-ant-wrong")
        _, error = await collect(provider.stream(HELLO, "claude-x", max_tokens=9))
    assert isinstance(error, AIProviderError)
    assert error.status == 401
