"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM, LM Studio...)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from ai.base import ChatMessage, FinishReason, Provider, ReplyStream
from ai.exceptions import AIUnavailable, from_openai_error
from ai.redaction import hide_request_dumps
from ai.streaming import ManagedReplyStream, StreamPolicy

__all__ = ["PLACEHOLDER_API_KEY", "OpenAIProvider", "uses_max_completion_tokens"]

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to an OpenAI-compatible base URL configured without a key; local servers ignore it."""

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


class OpenAIProvider(Provider):
    """Streams chat completions through the official SDK (its own retries disabled).

    `timeout_s` is the SDK's HTTP timeout and the longest silence tolerated once text is
    flowing; `first_token_timeout_s` bounds the wait for the first text delta. Rate limits,
    5xx and connection failures are retried `max_retries` times before the first delta.
    """

    name = "openai"

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        first_token_timeout_s: float,
        max_retries: int,
        *,
        retry_backoff_s: float = 0.5,
        retry_after_cap_s: float = 10.0,
    ) -> None:
        if not api_key and not base_url:
            raise AIUnavailable("OpenAI is not configured (set OPENAI_API_KEY or OPENAI_BASE_URL)")
        hide_request_dumps("openai._base_client")
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url or None,
            timeout=timeout_s,
            max_retries=0,
        )
        self._policy = StreamPolicy(
            first_token_timeout_s=first_token_timeout_s,
            idle_timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=retry_backoff_s,
            retry_after_cap_s=retry_after_cap_s,
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        max_tokens: int,
        cancel: asyncio.Event | None = None,
    ) -> ReplyStream:
        params = [_to_param(message) for message in messages]

        def attempt() -> AsyncGenerator[str | FinishReason, None]:
            return self._attempt(params, model, max_tokens)

        return ManagedReplyStream(
            attempt,
            provider=self.name,
            policy=self._policy,
            map_error=from_openai_error,
            cancel=cancel,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _attempt(
        self, params: list[ChatCompletionMessageParam], model: str, max_tokens: int
    ) -> AsyncGenerator[str | FinishReason, None]:
        completions = self._client.chat.completions
        if uses_max_completion_tokens(model):
            stream = await completions.create(
                model=model, messages=params, stream=True, max_completion_tokens=max_tokens
            )
        else:
            stream = await completions.create(
                model=model, messages=params, stream=True, max_tokens=max_tokens
            )
        try:
            finish = FinishReason.FINISHED
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if not chunk.choices:  # e.g. the usage chunk some servers send last
                    continue
                choice = chunk.choices[0]
                delta = choice.delta.content if choice.delta is not None else None
                if delta:
                    yield delta
                if choice.finish_reason:
                    finish = _FINISH_REASONS.get(choice.finish_reason, FinishReason.FINISHED)
            yield finish
        finally:
            # Closing the response before its end drops the connection: the server sees
            # the client leave and stops generating.
            await stream.close()
