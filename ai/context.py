"""Choosing which messages of a conversation fit in the model's context.

Token counts are estimated, not measured: a tokenizer per model would need its encoding
files downloaded, and the budget only needs to be roughly right. English text averages
about four characters per token, so a text costs ceil(len / 4) tokens, and every message
adds 4 tokens for its role and framing. The estimate errs high for plain English and low
for dense non-Latin scripts; keep the budget well under the model's real window.
"""

from __future__ import annotations

from collections.abc import Sequence

from ai.base import ChatMessage

__all__ = ["MESSAGE_OVERHEAD_TOKENS", "build_context", "estimate_message_tokens", "estimate_tokens"]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """Estimated tokens of `text`: ceil(len(text) / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_message_tokens(message: ChatMessage) -> int:
    """Estimated tokens of one message: its text plus 4 for role and framing."""
    return estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS


def build_context(
    history: Sequence[ChatMessage],
    *,
    system_prompt: str | None,
    budget_tokens: int,
) -> list[ChatMessage]:
    """The messages to send: the system prompt (if any), then the newest history that fits.

    Messages are kept whole and in order, and only a contiguous run ending at the newest
    message is kept (an older message is never kept once a newer one was dropped). The
    newest message is always kept, even if it alone exceeds the budget.
    """
    result: list[ChatMessage] = []
    remaining = budget_tokens
    if system_prompt:
        system = ChatMessage(role="system", content=system_prompt)
        result.append(system)
        remaining -= estimate_message_tokens(system)
    kept: list[ChatMessage] = []
    for message in reversed(history):
        cost = estimate_message_tokens(message)
        if kept and cost > remaining:
            break
        kept.append(message)
        remaining -= cost
    kept.reverse()
    result.extend(kept)
    return result
