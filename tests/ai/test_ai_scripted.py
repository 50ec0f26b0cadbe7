"""The scripted provider: deterministic, countable, fast, and able to fail on demand."""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_llm import collect

from ai.base import ChatMessage, FinishReason
from ai.exceptions import AIProviderError
from ai.scripted import VOCABULARY, ScriptedProvider, parse_scripted_model


def _prompt(text: str) -> list[ChatMessage]:
    return [ChatMessage("system", "sys"), ChatMessage("user", text)]


async def test_same_prompt_same_reply_and_other_prompt_other_reply() -> None:
    provider = ScriptedProvider(tokens=30, delay_ms=0)
    first, _ = await collect(provider.stream(_prompt("hello"), "scripted", max_tokens=100))
    again, _ = await collect(provider.stream(_prompt("hello"), "scripted", max_tokens=100))
    other, _ = await collect(provider.stream(_prompt("goodbye"), "scripted", max_tokens=100))
    assert first == again
    assert first != other


async def test_tokens_are_words_with_leading_spaces_after_the_first() -> None:
    provider = ScriptedProvider(tokens=12, delay_ms=0)
    stream = provider.stream(_prompt("shape"), "scripted", max_tokens=100)
    deltas, error = await collect(stream)
    assert error is None
    assert stream.finish_reason is FinishReason.FINISHED
    assert len(deltas) == 12
    assert deltas[0] in VOCABULARY
    assert all(d.startswith(" ") and d[1:] in VOCABULARY for d in deltas[1:])


async def test_reply_depends_only_on_the_last_user_message() -> None:
    provider = ScriptedProvider(tokens=8, delay_ms=0)
    short, _ = await collect(provider.stream(_prompt("q"), "scripted", max_tokens=100))
    history = [
        ChatMessage("user", "earlier"),
        ChatMessage("assistant", "reply"),
        ChatMessage("user", "q"),
        ChatMessage("assistant", "partial"),
    ]
    longer, _ = await collect(provider.stream(history, "scripted", max_tokens=100))
    assert short == longer


@pytest.mark.parametrize(
    ("model", "count"), [("scripted", 5), ("scripted:3", 3), ("scripted:0", 0), ("scripted:7:0", 7)]
)
async def test_token_counts_from_the_model_name(model: str, count: int) -> None:
    provider = ScriptedProvider(tokens=5, delay_ms=0)
    deltas, error = await collect(provider.stream(_prompt("x"), model, max_tokens=100))
    assert error is None
    assert len(deltas) == count


async def test_max_tokens_cuts_with_length() -> None:
    provider = ScriptedProvider(tokens=10, delay_ms=0)
    stream = provider.stream(_prompt("x"), "scripted", max_tokens=4)
    deltas, error = await collect(stream)
    assert (len(deltas), error) == (4, None)
    assert stream.finish_reason is FinishReason.LENGTH


async def test_delay_from_the_model_name_paces_the_tokens() -> None:
    provider = ScriptedProvider(tokens=5, delay_ms=0)
    started = time.monotonic()
    deltas, _ = await collect(provider.stream(_prompt("x"), "scripted:5:40", max_tokens=100))
    assert len(deltas) == 5
    assert time.monotonic() - started >= 0.19


async def test_zero_delay_still_yields_to_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        provider = ScriptedProvider(tokens=200, delay_ms=0)
        deltas, _ = await collect(provider.stream(_prompt("x"), "scripted", max_tokens=1000))
    finally:
        task.cancel()
    assert len(deltas) == 200
    assert ticks >= 150


async def test_scripted_fail_raises_after_k_tokens() -> None:
    provider = ScriptedProvider(tokens=40, delay_ms=0)
    stream = provider.stream(_prompt("x"), "scripted-fail:3", max_tokens=100)
    deltas, error = await collect(stream)
    assert len(deltas) == 3
    assert isinstance(error, AIProviderError)
    assert error.code == "AI_ERROR"
    assert stream.finish_reason is FinishReason.ERROR


async def test_scripted_fail_at_zero_fails_before_any_token() -> None:
    provider = ScriptedProvider(tokens=40, delay_ms=0)
    deltas, error = await collect(provider.stream(_prompt("x"), "scripted-fail:0", max_tokens=9))
    assert deltas == []
    assert isinstance(error, AIProviderError)


async def test_cancel_event_stops_with_stopped() -> None:
    provider = ScriptedProvider(tokens=1000, delay_ms=5)  # 5 s to its end
    cancel = asyncio.Event()
    stream = provider.stream(_prompt("x"), "scripted", max_tokens=2000, cancel=cancel)
    deltas: list[str] = []
    async for delta in stream:
        deltas.append(delta)
        if len(deltas) == 1:  # set while the stream waits between later tokens
            asyncio.get_running_loop().call_later(0.05, cancel.set)
    assert 0 < len(deltas) < 1000
    assert stream.finish_reason is FinishReason.STOPPED


async def test_cancel_already_set_yields_nothing() -> None:
    cancel = asyncio.Event()
    cancel.set()
    stream = ScriptedProvider(5, 0).stream(_prompt("x"), "scripted", max_tokens=9, cancel=cancel)
    assert await collect(stream) == ([], None)
    assert stream.finish_reason is FinishReason.STOPPED


@pytest.mark.parametrize(
    ("model", "tokens", "delay", "fail"),
    [
        ("scripted", 40, 15.0, False),
        ("scripted:12", 12, 15.0, False),
        ("scripted:12:2.5", 12, 2.5, False),
        ("scripted-fail:4", 4, 15.0, True),
        ("scripted-fail:4:0", 4, 0.0, True),
    ],
)
def test_model_name_options(model: str, tokens: int, delay: float, fail: bool) -> None:
    options = parse_scripted_model(model, tokens=40, delay_ms=15.0)
    assert (options.tokens, options.delay_ms, options.fail) == (tokens, delay, fail)


@pytest.mark.parametrize(
    "model", ["scripted:", "scripted:x", "scripted-fail", "scripted:1:2:3", "scripted-model"]
)
def test_malformed_model_names_are_refused(model: str) -> None:
    with pytest.raises(AIProviderError):
        ScriptedProvider(5, 0).stream(_prompt("x"), model, max_tokens=9)
