"""Anthropic's Messages API, streamed through the official SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import anthropic
from anthropic.types import MessageParam

from ai.base import ChatMessage, FinishReason, Provider, ReplyStream
from ai.exceptions import AIProviderError, AIUnavailable, from_anthropic_error
from ai.redaction import hide_request_dumps
from ai.streaming import ManagedReplyStream, StreamPolicy

__all__ = ["AnthropicProvider", "AnthropicRequest", "to_anthropic_request"]

PLACEHOLDER_API_KEY = "not-needed"

_FINISH_REASONS = {
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
}


@dataclass(frozen=True, slots=True)
class AnthropicRequest:
    """Messages reshaped for the Messages API: a separate system text, then turns."""

    system: str | None
    turns: tuple[tuple[str, str], ...]
    """(role, text) pairs, alternating, starting with "user"."""


def to_anthropic_request(messages: Sequence[ChatMessage]) -> AnthropicRequest:
    """Reshape chat messages the way the Messages API requires.

    System messages are joined (blank line between) into the separate `system` text. Empty
    messages are dropped (the API rejects empty text), leading assistant messages are
    dropped (the first turn must be the user's), and consecutive messages of one role are
    merged with a blank line, so roles alternate.
    """
    system_parts: list[str] = []
    turns: list[tuple[str, str]] = []
    for message in messages:
        if not message.content.strip():
            continue
        if message.role == "system":
            system_parts.append(message.content)
        elif not turns and message.role == "assistant":
            continue
        elif turns and turns[-1][0] == message.role:
            turns[-1] = (message.role, turns[-1][1] + "\n\n" + message.content)
        else:
            turns.append((message.role, message.content))
    return AnthropicRequest(
        system="\n\n".join(system_parts) if system_parts else None,
        turns=tuple(turns),
    )


def _to_param(role: str, text: str) -> MessageParam:
    if role == "assistant":
        return {"role": "assistant", "content": text}
    return {"role": "user", "content": text}


class AnthropicProvider(Provider):
    """Streams Messages API replies through the official SDK (its own retries disabled).

    Timeouts and retries work as in OpenAIProvider. A mid-stream `event: error` (such as
    `overloaded_error`) ends the stream with the mapped AIError.
    """

    name = "anthropic"

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
            raise AIUnavailable("Anthropic is not configured (set ANTHROPIC_API_KEY)")
        hide_request_dumps("anthropic._base_client")
        self._client = anthropic.AsyncAnthropic(
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
        """Stream a reply; a conversation without any user message raises AIProviderError."""
        request = to_anthropic_request(messages)
        if not request.turns:
            raise AIProviderError("the conversation has no user message to answer")
        params = [_to_param(role, text) for role, text in request.turns]

        def attempt() -> AsyncGenerator[str | FinishReason, None]:
            return self._attempt(request.system, params, model, max_tokens)

        return ManagedReplyStream(
            attempt,
            provider=self.name,
            policy=self._policy,
            map_error=from_anthropic_error,
            cancel=cancel,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _attempt(
        self, system: str | None, params: list[MessageParam], model: str, max_tokens: int
    ) -> AsyncGenerator[str | FinishReason, None]:
        messages = self._client.messages
        if system is None:
            stream = await messages.create(
                model=model, max_tokens=max_tokens, messages=params, stream=True
            )
        else:
            stream = await messages.create(
                model=model, max_tokens=max_tokens, messages=params, system=system, stream=True
            )
        try:
            finish = FinishReason.FINISHED
            stopped = False
            while True:
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if event.type == "content_block_delta":
                    if event.delta.type == "text_delta" and event.delta.text:
                        yield event.delta.text
                elif event.type == "message_delta":
                    if event.delta.stop_reason:
                        finish = _FINISH_REASONS.get(event.delta.stop_reason, FinishReason.FINISHED)
                elif event.type == "message_stop":
                    # Read on to the end of the body so the connection can be reused.
                    stopped = True
            if not stopped:
                raise AIUnavailable("anthropic stream ended before the reply was complete")
            yield finish
        finally:
            # Closing the response before its end drops the connection: the server sees
            # the client leave and stops generating.
            await stream.close()
