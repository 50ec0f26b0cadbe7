"""Choosing the provider that serves a model name."""

from __future__ import annotations

import re
from typing import Literal

from ai.anthropic_provider import AnthropicProvider
from ai.base import Provider
from ai.exceptions import AIUnavailable
from ai.openai_provider import OpenAIProvider
from ai.scripted import ScriptedProvider
from ai.settings import AISettings

__all__ = ["FALLBACK_ANTHROPIC_MODEL", "FALLBACK_OPENAI_MODEL", "ProviderName", "ProviderRegistry"]

ProviderName = Literal["openai", "anthropic", "scripted"]

FALLBACK_OPENAI_MODEL = "gpt-4o-mini"
FALLBACK_ANTHROPIC_MODEL = "claude-3-5-sonnet-latest"
SCRIPTED_MODEL = "scripted"

_NAMES: dict[str, ProviderName] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "scripted": "scripted",
}
_OPENAI_MODEL = re.compile(r"(gpt-|text-|chatgpt-|o\d).*", re.DOTALL)


class ProviderRegistry:
    """Routes model names to providers, creating each provider once, on first use.

    Routing, first match wins:

    1. `settings.provider_overrides`: the longest model-name prefix that matches;
    2. "scripted*" -> scripted; "gpt-*", "o<digit>*", "text-*", "chatgpt-*" -> openai;
       "claude-*" -> anthropic;
    3. any other name -> openai when an OpenAI-compatible base URL is set (such servers
       serve arbitrary names like "llama3"), else AIUnavailable.

    A model routed to OpenAI or Anthropic while that provider is not configured raises
    AIUnavailable; it is never silently answered by the scripted provider.
    """

    def __init__(self, settings: AISettings) -> None:
        self._settings = settings
        self._providers: dict[ProviderName, Provider] = {}

    @property
    def settings(self) -> AISettings:
        """The settings this registry was built from."""
        return self._settings

    @property
    def default_model(self) -> str:
        """The configured default model, else one the configured provider serves."""
        settings = self._settings
        if settings.default_model:
            return settings.default_model
        if settings.openai_configured:
            return FALLBACK_OPENAI_MODEL
        if settings.anthropic_configured:
            return FALLBACK_ANTHROPIC_MODEL
        return SCRIPTED_MODEL

    @property
    def uses_scripted_default(self) -> bool:
        """True when no real provider is configured, so replies are scripted."""
        return not (self._settings.openai_configured or self._settings.anthropic_configured)

    def provider_name_for(self, model: str) -> ProviderName:
        """The provider that serves `model` (routing in the class docstring)."""
        overrides = self._settings.provider_overrides
        matches = [prefix for prefix in overrides if model.startswith(prefix)]
        if matches:
            name = _NAMES.get(overrides[max(matches, key=len)])
            if name is not None:  # always, as AISettings validates the overrides
                return name
        if model.startswith("scripted"):
            return "scripted"
        if _OPENAI_MODEL.fullmatch(model):
            return "openai"
        if model.startswith("claude-"):
            return "anthropic"
        if self._settings.openai_base_url:
            return "openai"
        raise AIUnavailable("no provider configured for this model")

    def provider_for(self, model: str) -> Provider:
        """The (cached) provider serving `model`; AIUnavailable if it is not configured."""
        name = self.provider_name_for(model)
        provider = self._providers.get(name)
        if provider is None:
            provider = self._create(name)
            self._providers[name] = provider
        return provider

    async def aclose(self) -> None:
        """Close every provider created so far."""
        providers = list(self._providers.values())
        self._providers.clear()
        for provider in providers:
            await provider.aclose()

    def _create(self, name: ProviderName) -> Provider:
        settings = self._settings
        if name == "scripted":
            return ScriptedProvider(settings.scripted_tokens, settings.scripted_delay_ms)
        if name == "openai":
            if not settings.openai_configured:
                raise AIUnavailable(
                    "OpenAI models are not available: OPENAI_API_KEY or OPENAI_BASE_URL is not set"
                )
            return OpenAIProvider(
                settings.openai_api_key,
                settings.openai_base_url,
                settings.request_timeout_s,
                settings.first_token_timeout_s,
                settings.max_retries,
            )
        if not settings.anthropic_configured:
            raise AIUnavailable("Anthropic models are not available: ANTHROPIC_API_KEY is not set")
        return AnthropicProvider(
            settings.anthropic_api_key,
            settings.anthropic_base_url,
            settings.request_timeout_s,
            settings.first_token_timeout_s,
            settings.max_retries,
        )
