"""A local provider that streams deterministic replies, for development and load tests.

The reply is derived from the last user message alone: a SHA-256 of its text seeds a
stream of indices into a fixed vocabulary, so the same prompt always gets the same reply.
Each delta is one word, the first without a leading space and the others with one
(" word"), and each arrives `delay_ms` after the previous one (the first `delay_ms` after
the request). With `delay_ms` 0 the stream still yields to the event loop between words.

Model names (all start with "scripted"):

- "scripted": the provider's configured token count and delay;
- "scripted:N": N tokens, configured delay;
- "scripted:N:D": N tokens, D milliseconds between them;
- "scripted-fail:K" / "scripted-fail:K:D": K tokens, then an AIProviderError, as a
  provider failing mid-stream would.

`max_tokens` caps the reply (ending with FinishReason.LENGTH); a cancel event stops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass

from ai.base import ChatMessage, FinishReason, Provider, ReplyStream
from ai.exceptions import AIProviderError, from_transport_error
from ai.streaming import ManagedReplyStream, StreamPolicy

__all__ = ["VOCABULARY", "ScriptedOptions", "ScriptedProvider", "parse_scripted_model"]

VOCABULARY: tuple[str, ...] = (
    "the", "quick", "answer", "is", "that", "it", "depends", "on", "context", "and",
    "careful", "reading", "of", "your", "question", "shows", "a", "simple", "idea", "we",
    "can", "build", "from", "small", "steps", "so", "let", "us", "start", "with",
    "clear", "examples", "then", "check", "each", "result", "against", "what", "you", "expect",
    "because", "tests", "make", "good", "code", "easier", "to", "change", "over", "time",
    "in", "short", "keep", "things", "plain", "honest", "useful", "kind", "calm", "brief",
    "streams", "tokens", "arrive", "here",
)  # fmt: skip

_MODEL = re.compile(r"scripted(?P<fail>-fail)?(?::(?P<n>\d{1,9})(?::(?P<d>\d{1,9}(?:\.\d+)?))?)?")


@dataclass(frozen=True, slots=True)
class ScriptedOptions:
    """What a scripted model name asks for."""

    tokens: int
    delay_ms: float
    fail: bool = False


def parse_scripted_model(model: str, *, tokens: int, delay_ms: float) -> ScriptedOptions:
    """Parse a scripted model name (see module docstring); defaults fill what it omits."""
    match = _MODEL.fullmatch(model)
    if match is None or (match["fail"] and match["n"] is None):
        raise AIProviderError(
            "unknown scripted model; use scripted, scripted:N, scripted:N:D or scripted-fail:K"
        )
    return ScriptedOptions(
        tokens=int(match["n"]) if match["n"] is not None else tokens,
        delay_ms=float(match["d"]) if match["d"] is not None else delay_ms,
        fail=match["fail"] is not None,
    )


def scripted_words(prompt: str) -> Iterator[str]:
    """The endless deterministic word sequence for `prompt`."""
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    block = 0
    while True:
        digest = hashlib.sha256(seed + block.to_bytes(8, "big")).digest()
        for i in range(0, len(digest), 2):
            yield VOCABULARY[int.from_bytes(digest[i : i + 2], "big") % len(VOCABULARY)]
        block += 1


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


class ScriptedProvider(Provider):
    """Streams deterministic replies without any network (see module docstring)."""

    name = "scripted"

    def __init__(self, tokens: int, delay_ms: float) -> None:
        if tokens < 0 or delay_ms < 0:
            raise ValueError("tokens and delay_ms must be >= 0")
        self._tokens = tokens
        self._delay_ms = delay_ms

    def stream(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        max_tokens: int,
        cancel: asyncio.Event | None = None,
    ) -> ReplyStream:
        """Stream the scripted reply; a malformed model name raises AIProviderError now."""
        options = parse_scripted_model(model, tokens=self._tokens, delay_ms=self._delay_ms)
        prompt = _last_user_text(messages)

        def attempt() -> AsyncGenerator[str | FinishReason, None]:
            return self._reply(prompt, options, max_tokens)

        return ManagedReplyStream(
            attempt,
            provider=self.name,
            policy=StreamPolicy(),
            map_error=self._map_error,
            cancel=cancel,
        )

    async def aclose(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _map_error(exc: BaseException) -> AIProviderError:
        mapped = from_transport_error(exc, "scripted")
        return AIProviderError(mapped.message if mapped else "scripted provider failed")

    @staticmethod
    async def _reply(
        prompt: str, options: ScriptedOptions, max_tokens: int
    ) -> AsyncGenerator[str | FinishReason, None]:
        delay_s = options.delay_ms / 1000.0
        count = min(options.tokens, max(max_tokens, 0))
        words = scripted_words(prompt)
        for index in range(count):
            await asyncio.sleep(delay_s)
            word = next(words)
            yield word if index == 0 else " " + word
        if options.fail and options.tokens <= count:
            raise AIProviderError(f"scripted provider failed after {options.tokens} tokens")
        yield FinishReason.LENGTH if options.tokens > count else FinishReason.FINISHED
