"""API keys and prompts never reach logs or error messages, whatever fails."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from fake_llm import FakeAnthropicServer, FakeOpenAIServer, collect

from ai.base import ChatMessage
from ai.exceptions import AIError

KEY = "sk-LEAKCHECK-7f3a9c"
PROMPT = "my bank PIN is 4921 please remember it"
FAILURES: list[dict[str, Any]] = [
    {"fail_first": 99, "fail_status": 401},
    {"fail_first": 99, "fail_status": 400},
    {"fail_first": 99, "fail_status": 500},
    {"fail_first": 99, "fail_status": 429},
    {"error_after": 1},
    {"cut_after": 1},
    {"stall_after": 1},
]


def _assert_clean(text: str) -> None:
    assert KEY not in text
    assert "LEAKCHECK" not in text
    assert PROMPT not in text
    assert "4921" not in text


@pytest.mark.parametrize(
    "failure", FAILURES, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items())
)
@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_failing_calls_leak_neither_key_nor_prompt(
    caplog: pytest.LogCaptureFixture,
    make_openai: Callable[..., Any],
    make_anthropic: Callable[..., Any],
    which: str,
    failure: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG)
    server_cls = FakeOpenAIServer if which == "openai" else FakeAnthropicServer
    make = make_openai if which == "openai" else make_anthropic
    model = "gpt-4o" if which == "openai" else "claude-x"
    messages = [ChatMessage("system", PROMPT), ChatMessage("user", PROMPT)]
    async with server_cls(require_api_key=KEY, **failure) as server:
        provider = make(server.base_url, api_key=KEY, timeout_s=0.2, first_token_timeout_s=0.2)
        _deltas, error = await collect(provider.stream(messages, model, max_tokens=20))
    assert server.requests and server.requests[0].api_key == KEY  # the key was really sent
    assert isinstance(error, AIError)
    _assert_clean(caplog.text)
    _assert_clean(str(error) + repr(error) + error.message)
    _assert_clean("".join(traceback.format_exception(error)))
    assert any(
        record.name.startswith(("openai", "anthropic", "httpx")) for record in caplog.records
    )
