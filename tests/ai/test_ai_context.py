"""Token estimates and context trimming."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ai.base import ChatMessage
from ai.context import build_context, estimate_message_tokens, estimate_tokens


def test_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert estimate_message_tokens(ChatMessage("user", "abcd")) == 1 + 4


def _msg(i: int, size: int) -> ChatMessage:
    return ChatMessage("user" if i % 2 == 0 else "assistant", f"{i}:".ljust(size, "x"))


def test_keeps_the_newest_messages_that_fit_after_the_system_prompt() -> None:
    history = [_msg(i, 40) for i in range(10)]  # 10 + 4 = 14 tokens each
    result = build_context(history, system_prompt="S" * 16, budget_tokens=8 + 14 * 3)
    assert result[0] == ChatMessage("system", "S" * 16)
    assert result[1:] == history[-3:]


def test_without_a_system_prompt() -> None:
    history = [_msg(i, 40) for i in range(4)]
    assert build_context(history, system_prompt=None, budget_tokens=28) == history[-2:]
    assert build_context(history, system_prompt="", budget_tokens=10_000) == history


def test_newest_message_is_kept_even_when_too_big() -> None:
    history = [_msg(0, 10), _msg(1, 4000)]
    result = build_context(history, system_prompt="sys", budget_tokens=50)
    assert result == [ChatMessage("system", "sys"), history[1]]


def test_an_older_small_message_is_not_kept_after_a_dropped_bigger_one() -> None:
    history = [_msg(0, 4), _msg(1, 400), _msg(2, 4)]
    assert build_context(history, system_prompt=None, budget_tokens=20) == [history[2]]


def test_empty_history() -> None:
    assert build_context([], system_prompt="sys", budget_tokens=1) == [ChatMessage("system", "sys")]
    assert build_context([], system_prompt=None, budget_tokens=1) == []


_histories = st.lists(
    st.builds(
        ChatMessage,
        role=st.sampled_from(["user", "assistant", "system"]),
        content=st.text(max_size=80),
    ),
    max_size=30,
)


@given(_histories, st.one_of(st.none(), st.text(max_size=60)), st.integers(0, 400))
def test_trimming_properties(
    history: list[ChatMessage], system_prompt: str | None, budget: int
) -> None:
    result = build_context(history, system_prompt=system_prompt, budget_tokens=budget)
    kept = result[1:] if system_prompt else result
    if system_prompt:
        assert result[0] == ChatMessage("system", system_prompt)
    # A whole, unsplit suffix of the history, in order.
    assert kept == (history[len(history) - len(kept) :] if kept else [])
    if history:
        assert kept and kept[-1] is history[-1]
    cost = sum(estimate_message_tokens(m) for m in result)
    if len(kept) > 1:
        assert cost <= budget
    if len(kept) < len(history):
        dropped = history[len(history) - len(kept) - 1]
        assert cost + estimate_message_tokens(dropped) > budget
