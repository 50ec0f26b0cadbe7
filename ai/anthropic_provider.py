"""Anthropic's Messages API, streamed through the official SDK."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anthropic
from anthropic.types import MessageParam, RawMessageStreamEvent

from ai.base import ChatMessage, FinishReason
from ai.exceptions import AIError, AIProviderError, from_anthropic_error
from ai.sdk_provider import ReplyProgress, SDKProvider, SDKStream

__all__ = ["AnthropicProvider", "AnthropicRequest", "to_anthropic_request"]

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


_Request = tuple[str | None, list[MessageParam]]
"""The separate system text, and the turns as the SDK takes them."""


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic, _Request, RawMessageStreamEvent]):
    """Streams Messages API replies through the official SDK (timeouts, retries: SDKProvider).

    A conversation without any user message raises AIProviderError from `stream()`. A
    mid-stream `event: error` (such as `overloaded_error`) ends the stream with the mapped
    AIError, and a stream that stops before `message_stop` with AIUnavailable.
    """

    name = "anthropic"
    NOT_CONFIGURED = "Anthropic is not configured (set ANTHROPIC_API_KEY)"
    SDK_LOGGER = "anthropic._base_client"
    END_EVENT = True

    def _make_client(
        self, api_key: str, base_url: str | None, timeout_s: float, *, max_retries: int
    ) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def _request(self, messages: Sequence[ChatMessage]) -> _Request:
        request = to_anthropic_request(messages)
        if not request.turns:
            raise AIProviderError("the conversation has no user message to answer")
        return request.system, [_to_param(role, text) for role, text in request.turns]

    async def _open(
        self, request: _Request, model: str, max_tokens: int
    ) -> SDKStream[RawMessageStreamEvent]:
        system, params = request
        messages = self._client.messages
        if system is None:
            return await messages.create(
                model=model, max_tokens=max_tokens, messages=params, stream=True
            )
        return await messages.create(
            model=model, max_tokens=max_tokens, messages=params, system=system, stream=True
        )

    def _read(self, event: RawMessageStreamEvent, progress: ReplyProgress) -> str | None:
        if event.type == "content_block_delta":
            return event.delta.text if event.delta.type == "text_delta" else None
        if event.type == "message_delta" and event.delta.stop_reason:
            stop_reason = event.delta.stop_reason
            progress.finish = _FINISH_REASONS.get(stop_reason, FinishReason.FINISHED)
        elif event.type == "message_stop":
            # The base reads on to the end of the body, so the connection can be reused.
            progress.ended = True
        return None

    def _map_error(self, exc: BaseException) -> AIError:
        return from_anthropic_error(exc)
