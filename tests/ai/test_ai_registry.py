"""Routing model names to providers, and the default model."""

from __future__ import annotations

import pytest
from fake_llm import FakeOpenAIServer, collect

from ai.anthropic_provider import AnthropicProvider
from ai.base import ChatMessage
from ai.exceptions import AIUnavailable
from ai.openai_provider import OpenAIProvider
from ai.registry import ProviderRegistry
from ai.scripted import ScriptedProvider
from ai.settings import AISettings

EVERYTHING = AISettings(openai_api_key="sk-o", anthropic_api_key="sk-a")


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o1", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("text-davinci-003", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("claude-3-5-sonnet-latest", "anthropic"),
        ("claude-opus-4", "anthropic"),
        ("scripted", "scripted"),
        ("scripted:5:0", "scripted"),
        ("scripted-fail:2", "scripted"),
    ],
)
def test_routing_table(model: str, provider: str) -> None:
    assert ProviderRegistry(EVERYTHING).provider_name_for(model) == provider


@pytest.mark.parametrize("model", ["llama3", "mistral:7b", "omni", "o", "claude", ""])
def test_unknown_models_need_a_compatible_base_url(model: str) -> None:
    with pytest.raises(AIUnavailable, match="no provider configured"):
        ProviderRegistry(EVERYTHING).provider_name_for(model)
    compatible = AISettings(openai_base_url="http://127.0.0.1:11434/v1")
    assert ProviderRegistry(compatible).provider_name_for(model) == "openai"


def test_overrides_win_and_the_longest_prefix_wins() -> None:
    settings = AISettings(
        openai_api_key="sk-o",
        anthropic_api_key="sk-a",
        provider_overrides={"llama": "openai", "gpt-": "scripted", "gpt-4o-": "anthropic"},
    )
    registry = ProviderRegistry(settings)
    assert registry.provider_name_for("llama3:8b") == "openai"
    assert registry.provider_name_for("gpt-4") == "scripted"
    assert registry.provider_name_for("gpt-4o-mini") == "anthropic"
    assert registry.provider_name_for("claude-3") == "anthropic"


async def test_providers_are_created_lazily_and_cached_per_registry() -> None:
    first, second = ProviderRegistry(EVERYTHING), ProviderRegistry(EVERYTHING)
    try:
        openai_provider = first.provider_for("gpt-4o")
        assert isinstance(openai_provider, OpenAIProvider)
        assert first.provider_for("o3-mini") is openai_provider
        assert isinstance(first.provider_for("claude-x"), AnthropicProvider)
        assert isinstance(first.provider_for("scripted:3"), ScriptedProvider)
        assert second.provider_for("gpt-4o") is not openai_provider
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize(
    ("settings", "model", "message"),
    [
        (AISettings(anthropic_api_key="sk-a"), "gpt-4o", "OPENAI_API_KEY"),
        (AISettings(openai_api_key="sk-o"), "claude-x", "ANTHROPIC_API_KEY"),
        (AISettings(openai_api_key="  "), "gpt-4o", "OPENAI_API_KEY"),
        (AISettings(), "gpt-4o", "OPENAI_API_KEY"),
    ],
)
def test_unconfigured_providers_are_unavailable_never_scripted(
    settings: AISettings, model: str, message: str
) -> None:
    with pytest.raises(AIUnavailable, match=message) as caught:
        ProviderRegistry(settings).provider_for(model)
    assert caught.value.code == "AI_UNAVAILABLE"


@pytest.mark.parametrize(
    ("settings", "model", "scripted"),
    [
        (AISettings(default_model="claude-3-opus", openai_api_key="k"), "claude-3-opus", False),
        (AISettings(openai_api_key="k", anthropic_api_key="a"), "gpt-4o-mini", False),
        (AISettings(openai_base_url="http://127.0.0.1:1/v1"), "gpt-4o-mini", False),
        (AISettings(anthropic_api_key="a"), "claude-3-5-sonnet-latest", False),
        (AISettings(), "scripted", True),
        (AISettings(openai_api_key=""), "scripted", True),
    ],
)
def test_default_model(settings: AISettings, model: str, scripted: bool) -> None:
    registry = ProviderRegistry(settings)
    assert registry.default_model == model
    assert registry.uses_scripted_default is scripted


async def test_scripted_default_streams_without_any_key() -> None:
    registry = ProviderRegistry(AISettings(scripted_tokens=6, scripted_delay_ms=0))
    provider = registry.provider_for(registry.default_model)
    messages = [ChatMessage("user", "hi")]
    deltas, error = await collect(provider.stream(messages, registry.default_model, max_tokens=50))
    assert (len(deltas), error) == (6, None)
    await registry.aclose()


async def test_compatible_server_serves_arbitrary_model_names() -> None:
    async with FakeOpenAIServer(tokens=["local"]) as server:
        registry = ProviderRegistry(AISettings(openai_base_url=server.base_url))
        try:
            provider = registry.provider_for("llama3")
            stream = provider.stream([ChatMessage("user", "hi")], "llama3", max_tokens=5)
            assert await collect(stream) == (["local"], None)
        finally:
            await registry.aclose()
    assert server.requests[0].api_key == "not-needed"
