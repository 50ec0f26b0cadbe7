"""Shared fixtures of the ai tests; also makes tests/support importable."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

from ai.anthropic_provider import AnthropicProvider  # noqa: E402
from ai.openai_provider import OpenAIProvider  # noqa: E402

# Short limits keep the failure tests fast.
FAST: dict[str, Any] = {
    "timeout_s": 0.4,
    "first_token_timeout_s": 0.4,
    "max_retries": 2,
    "retry_backoff_s": 0.01,
}


@pytest.fixture
async def make_openai() -> AsyncIterator[Callable[..., OpenAIProvider]]:
    """Factory of OpenAIProviders (fast limits by default), closed after the test."""
    made: list[OpenAIProvider] = []

    def make(
        base_url: str | None, api_key: str | None = "sk-test", **overrides: Any
    ) -> OpenAIProvider:
        provider = OpenAIProvider(api_key=api_key, base_url=base_url, **{**FAST, **overrides})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
async def make_anthropic() -> AsyncIterator[Callable[..., AnthropicProvider]]:
    """Factory of AnthropicProviders (fast limits by default), closed after the test."""
    made: list[AnthropicProvider] = []

    def make(
        base_url: str | None, api_key: str | None = "sk-ant-test", **overrides: Any
    ) -> AnthropicProvider:
        provider = AnthropicProvider(api_key=api_key, base_url=base_url, **{**FAST, **overrides})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()
