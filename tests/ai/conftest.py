"""Shared fixtures of the ai tests (tests/conftest.py puts tests/support on sys.path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ai.anthropic_provider import AnthropicProvider
from ai.openai_provider import OpenAIProvider

# Quick retries keep the failure tests fast; tests of timeouts pass their own short ones,
# the others get generous limits so a loaded machine cannot fail them.
FAST: dict[str, Any] = {
    "timeout_s": 5.0,
    "first_token_timeout_s": 5.0,
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
