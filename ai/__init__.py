"""Model providers behind one small streaming interface.

`ProviderRegistry(settings).provider_for(model).stream(messages, model, max_tokens=...)`
returns a ReplyStream of text deltas from OpenAI, Anthropic, an OpenAI-compatible server,
or the local scripted provider. Every failure is an `AIError` with a stable `code`.
"""

from ai.anthropic_provider import AnthropicProvider
from ai.base import ChatMessage, FinishReason, Provider, ReplyStream, Role
from ai.context import build_context, estimate_message_tokens, estimate_tokens
from ai.exceptions import (
    AIError,
    AIProviderError,
    AIRateLimited,
    AITimeout,
    AIUnavailable,
    from_anthropic_error,
    from_openai_error,
)
from ai.openai_provider import OpenAIProvider
from ai.registry import ProviderRegistry
from ai.scripted import ScriptedProvider
from ai.settings import AISettings

__all__ = [
    "AIError",
    "AIProviderError",
    "AIRateLimited",
    "AISettings",
    "AITimeout",
    "AIUnavailable",
    "AnthropicProvider",
    "ChatMessage",
    "FinishReason",
    "OpenAIProvider",
    "Provider",
    "ProviderRegistry",
    "ReplyStream",
    "Role",
    "ScriptedProvider",
    "build_context",
    "estimate_message_tokens",
    "estimate_tokens",
    "from_anthropic_error",
    "from_openai_error",
]
