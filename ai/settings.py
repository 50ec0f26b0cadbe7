"""Settings of the AI layer (filled from the environment by the server's configuration)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["PROVIDER_NAMES", "AISettings"]

PROVIDER_NAMES: Final = frozenset({"openai", "anthropic", "scripted"})


def _empty_overrides() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AISettings:
    """Everything the provider registry needs. API keys never appear in `repr()`.

    Timeouts: `first_token_timeout_s` bounds the wait from sending a request to its first
    text delta; `request_timeout_s` bounds any silence after that (and is the SDK's HTTP
    timeout). `max_retries` retries rate limits and unavailability, only before the first
    text delta has been yielded. `provider_overrides` maps a model-name prefix to
    "openai", "anthropic" or "scripted"; the longest matching prefix wins.
    """

    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    default_model: str | None = None
    system_prompt: str = "You are a helpful assistant."
    scripted_tokens: int = 40
    scripted_delay_ms: float = 15.0
    request_timeout_s: float = 60.0
    first_token_timeout_s: float = 30.0
    max_retries: int = 2
    context_budget_tokens: int = 8000
    max_reply_tokens: int = 2048
    provider_overrides: Mapping[str, str] = field(default_factory=_empty_overrides)

    def __post_init__(self) -> None:
        if self.scripted_tokens < 0:
            raise ValueError("scripted_tokens must be >= 0")
        if self.scripted_delay_ms < 0:
            raise ValueError("scripted_delay_ms must be >= 0")
        if self.request_timeout_s <= 0 or self.first_token_timeout_s <= 0:
            raise ValueError("AI timeouts must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.context_budget_tokens <= 0 or self.max_reply_tokens <= 0:
            raise ValueError("context_budget_tokens and max_reply_tokens must be positive")
        for prefix, provider in self.provider_overrides.items():
            if not prefix or provider not in PROVIDER_NAMES:
                raise ValueError(
                    "provider_overrides must map a non-empty model prefix to one of "
                    + ", ".join(sorted(PROVIDER_NAMES))
                )
        # A read-only copy, so the frozen settings cannot change behind the registry's back.
        object.__setattr__(
            self, "provider_overrides", MappingProxyType(dict(self.provider_overrides))
        )

    @property
    def openai_configured(self) -> bool:
        """True when an OpenAI key or an OpenAI-compatible base URL is set."""
        return _present(self.openai_api_key) or _present(self.openai_base_url)

    @property
    def anthropic_configured(self) -> bool:
        """True when an Anthropic key (or an Anthropic-compatible base URL) is set."""
        return _present(self.anthropic_api_key) or _present(self.anthropic_base_url)


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""
