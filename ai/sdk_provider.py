"""What every provider built on an official SDK shares: client, stream policy, closing.

A subclass fills in only what differs between SDKs: how to build the client, how to turn
chat messages into its request, how to open the stream, how to read text out of its
events, and which function of `ai.exceptions` converts its errors. Everything else is
decided here, once:

- the SDK's own retries are off: ManagedReplyStream retries, and only before the first
  token, where a retry cannot repeat text the user has already seen;
- the SDK's timeout is `timeout_s`, which is also the longest silence once text flows;
- the SDK's request dumps (which contain the prompt) are kept out of its debug log, and
  its errors are converted by `ai.exceptions`, whose messages hold no key and no prompt;
- a response is closed whenever an attempt ends, so a cancelled reply stops the server too.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from ai.base import ChatMessage, FinishReason, Provider, ReplyStream
from ai.exceptions import AIError, AIUnavailable
from ai.redaction import hide_request_dumps
from ai.streaming import ManagedReplyStream, StreamPolicy

__all__ = ["PLACEHOLDER_API_KEY", "ReplyProgress", "SDKClient", "SDKProvider", "SDKStream"]

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to a base URL configured without a key (SDKs refuse none); local servers ignore it."""

EventT = TypeVar("EventT")
EventT_co = TypeVar("EventT_co", covariant=True)
RequestT = TypeVar("RequestT")


class SDKClient(Protocol):
    """What the base needs of an SDK client (AsyncOpenAI, AsyncAnthropic)."""

    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=SDKClient)


class SDKStream(Protocol[EventT_co]):
    """What the base needs of an SDK's streamed response (both SDKs' AsyncStream)."""

    async def __anext__(self) -> EventT_co: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class ReplyProgress:
    """What the events of one attempt have said so far, besides their text."""

    finish: FinishReason = FinishReason.FINISHED
    """How the reply ended, as far as the events said (e.g. LENGTH)."""
    ended: bool = False
    """Set on the API's explicit end-of-reply event, where it sends one."""


class SDKProvider(Provider, Generic[ClientT, RequestT, EventT]):
    """Streams replies through an official SDK under one StreamPolicy.

    `timeout_s` is the SDK's HTTP timeout and the longest silence tolerated once text is
    flowing; `first_token_timeout_s` bounds the wait for the first text delta. Rate limits,
    5xx and connection failures are retried `max_retries` times before the first delta,
    after the provider's Retry-After (capped at `retry_after_cap_s`) or an exponential
    backoff from `retry_backoff_s`. Without `api_key` and `base_url` the provider is not
    configured: AIUnavailable.
    """

    NOT_CONFIGURED: ClassVar[str]
    """The AIUnavailable message when neither a key nor a base URL is given."""
    SDK_LOGGER: ClassVar[str]
    """The SDK logger that dumps request options (with the prompt) at DEBUG level."""
    END_EVENT: ClassVar[bool] = False
    """True when the API marks the end of a reply with an event (`ReplyProgress.ended`):
    a stream that stops without it was cut short, not finished, and is AIUnavailable."""

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
            raise AIUnavailable(self.NOT_CONFIGURED)
        hide_request_dumps(self.SDK_LOGGER)
        # The SDK must not retry by itself: it would also retry after text was streamed.
        self._client = self._make_client(
            api_key or PLACEHOLDER_API_KEY, base_url or None, timeout_s, max_retries=0
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
        request = self._request(messages)

        def attempt() -> AsyncGenerator[str | FinishReason, None]:
            return self._attempt(request, model, max_tokens)

        return ManagedReplyStream(
            attempt,
            provider=self.name,
            policy=self._policy,
            map_error=self._map_error,
            cancel=cancel,
        )

    async def aclose(self) -> None:
        await self._client.close()

    @abc.abstractmethod
    def _make_client(
        self, api_key: str, base_url: str | None, timeout_s: float, *, max_retries: int
    ) -> ClientT:
        """The SDK client; `base_url` None means the SDK's default."""

    @abc.abstractmethod
    def _request(self, messages: Sequence[ChatMessage]) -> RequestT:
        """`messages` in the SDK's shape, once per stream; may raise AIError at once."""

    @abc.abstractmethod
    async def _open(self, request: RequestT, model: str, max_tokens: int) -> SDKStream[EventT]:
        """Send one streaming request and return its response, not yet read."""

    @abc.abstractmethod
    def _read(self, event: EventT, progress: ReplyProgress) -> str | None:
        """The text delta `event` carries, if any; note a finish or end in `progress`."""

    @abc.abstractmethod
    def _map_error(self, exc: BaseException) -> AIError:
        """Convert what the SDK raised (one of the `ai.exceptions.from_*_error`)."""

    async def _attempt(
        self, request: RequestT, model: str, max_tokens: int
    ) -> AsyncGenerator[str | FinishReason, None]:
        response = await self._open(request, model, max_tokens)
        try:
            progress = ReplyProgress()
            # Not `async for`: the SDKs' __aiter__ is a second async generator, which
            # closing this one would leave open for the garbage collector to finalize.
            while True:
                try:
                    event = await response.__anext__()
                except StopAsyncIteration:
                    break
                text = self._read(event, progress)
                if text:
                    yield text
            if self.END_EVENT and not progress.ended:
                raise AIUnavailable(f"{self.name} stream ended before the reply was complete")
            yield progress.finish
        finally:
            # Closing the response before its end drops the connection: the server sees
            # the client leave and stops generating.
            await response.close()
