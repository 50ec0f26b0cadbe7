"""The provider interface: chat messages in, a stream of text deltas out."""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal, Self

__all__ = ["ChatMessage", "FinishReason", "Provider", "ReplyStream", "Role"]

Role = Literal["user", "assistant", "system"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation as the model sees it."""

    role: Role
    content: str


class FinishReason(enum.StrEnum):
    """Why a reply stream ended."""

    FINISHED = "finished"
    """The model finished its reply."""
    STOPPED = "stopped"
    """The caller cancelled the stream (cancel event or `aclose()`)."""
    LENGTH = "length"
    """The reply hit `max_tokens` and was cut."""
    ERROR = "error"
    """Iteration raised an `AIError`."""


class ReplyStream(abc.ABC):
    """An async iterator of non-empty text deltas from one model reply.

    Iterate with `async for delta in stream`. Every exception raised while iterating is
    an `ai.exceptions.AIError`. Once iteration has ended (normally, by cancellation, or
    with an error), `finish_reason` says why. Always either iterate to the end or call
    `aclose()` (or use `async with`), so the HTTP connection is released.
    """

    def __aiter__(self) -> Self:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> str:
        """Return the next non-empty text delta; raise StopAsyncIteration at the end."""

    @property
    @abc.abstractmethod
    def finish_reason(self) -> FinishReason:
        """Why the stream ended; raises RuntimeError while it is still running."""

    @property
    @abc.abstractmethod
    def done(self) -> bool:
        """True once the stream has ended and `finish_reason` is available."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop the stream now and release its connection; safe to call more than once.

        A stream closed before it ended finishes with `FinishReason.STOPPED`. May be called
        from another task while one task is iterating: that iteration then ends promptly.
        """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Provider(abc.ABC):
    """A source of model replies (OpenAI, Anthropic, a compatible server, or scripted)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def stream(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        max_tokens: int,
        cancel: asyncio.Event | None = None,
    ) -> ReplyStream:
        """Start streaming a reply to `messages` from `model`.

        Nothing is sent until the first iteration. When `cancel` is set, the stream stops
        promptly (it does not wait for the next chunk), closes its connection, and ends with
        `FinishReason.STOPPED`.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the provider's HTTP clients."""
