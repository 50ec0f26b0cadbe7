"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM, LM Studio...)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from ai.base import ChatMessage, FinishReason
from ai.exceptions import AIError, from_openai_error
from ai.sdk_provider import PLACEHOLDER_API_KEY, ReplyProgress, SDKProvider, SDKStream

__all__ = ["PLACEHOLDER_API_KEY", "OpenAIProvider", "uses_max_completion_tokens"]

# Reasoning models reject `max_tokens` and take `max_completion_tokens` instead.
_COMPLETION_TOKENS_MODELS = re.compile(r"o\d.*|gpt-5.*")

_FINISH_REASONS = {"length": FinishReason.LENGTH}


def uses_max_completion_tokens(model: str) -> bool:
    """True for models (o1, o3, o4-mini, gpt-5...) that take `max_completion_tokens`."""
    return _COMPLETION_TOKENS_MODELS.fullmatch(model) is not None


def _to_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(role="assistant", content=message.content)
    return ChatCompletionUserMessageParam(role="user", content=message.content)


class OpenAIProvider(
    SDKProvider[openai.AsyncOpenAI, list[ChatCompletionMessageParam], ChatCompletionChunk]
):
    """Streams chat completions through the official SDK (timeouts, retries: SDKProvider)."""

    name = "openai"
    NOT_CONFIGURED = "OpenAI is not configured (set OPENAI_API_KEY or OPENAI_BASE_URL)"
    SDK_LOGGER = "openai._base_client"

    def _make_client(
        self, api_key: str, base_url: str | None, timeout_s: float, *, max_retries: int
    ) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def _request(self, messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
        return [_to_param(message) for message in messages]

    async def _open(
        self, request: list[ChatCompletionMessageParam], model: str, max_tokens: int
    ) -> SDKStream[ChatCompletionChunk]:
        completions = self._client.chat.completions
        if uses_max_completion_tokens(model):
            return await completions.create(
                model=model, messages=request, stream=True, max_completion_tokens=max_tokens
            )
        return await completions.create(
            model=model, messages=request, stream=True, max_tokens=max_tokens
        )

    def _read(self, event: ChatCompletionChunk, progress: ReplyProgress) -> str | None:
        if not event.choices:  # e.g. the usage chunk some servers send last
            return None
        choice = event.choices[0]
        if choice.finish_reason:
            progress.finish = _FINISH_REASONS.get(choice.finish_reason, FinishReason.FINISHED)
        return choice.delta.content if choice.delta is not None else None

    def _map_error(self, exc: BaseException) -> AIError:
        return from_openai_error(exc)
