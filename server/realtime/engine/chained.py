"""One awaitable after another, without a coroutine frame of our own in between.

A websocket keeps every frame of its request handler, and of its frame reader, for its
whole life: a wrapper coroutine (`async def f(): x = await g(); ...`) around one of
engine.io's costs every idle socket that coroutine's frame (~0.27 KiB measured with
tracemalloc, for the handshake gate and for the frame check each). `Chained` does the
same job as such a wrapper in a 56-byte object: it drives `first` to its end, then hands
its result to `then(arg, result)`, which returns the awaitable to drive next (whose
result is the whole result) or None (the result is `first`'s).

It is an awaitable iterator as the interpreter drives them (`send`, `throw`, `close`,
`__next__`): whatever `first` or the next awaitable yields (asyncio futures) goes up to
the task unchanged, and what the task sends or throws goes down to it.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Chained"]

_A = TypeVar("_A")


def _driven(awaitable: Awaitable[Any]) -> Any:
    """What the interpreter drives for `await awaitable` (a coroutine: itself)."""
    if isinstance(awaitable, types.CoroutineType):
        return awaitable
    return awaitable.__await__()


class Chained(Generic[_A]):
    """`await Chained(first, then, arg)`: `await first`, then `await then(arg, result)`
    unless that is None. `then` should be a plain function (no closure, no bound method:
    either would be one more object per waiting socket)."""

    __slots__ = ("_arg", "_current", "_then")

    def __init__(
        self,
        first: Awaitable[Any],
        then: Callable[[_A, Any], Awaitable[Any] | None],
        arg: _A,
    ) -> None:
        self._current: Any = _driven(first)
        self._then: Callable[[_A, Any], Awaitable[Any] | None] | None = then
        self._arg: _A | None = arg

    def __await__(self) -> Generator[Any, Any, Any]:
        return self  # an iterator with send, throw and close, as the interpreter drives

    def __iter__(self) -> Chained[_A]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        try:
            return self._current.send(value)
        except StopIteration as stop:
            return self._next(stop.value)

    def throw(self, *exc: Any) -> Any:
        try:
            return self._current.throw(*exc)
        except StopIteration as stop:
            return self._next(stop.value)

    def close(self) -> None:
        self._then = self._arg = None
        self._current.close()

    def _next(self, result: Any) -> Any:
        """`first` is done with `result`: start the next awaitable, or finish."""
        then, arg = self._then, self._arg
        self._then = self._arg = None  # whatever they hold is not kept while we wait
        following = then(arg, result) if then is not None else None  # type: ignore[arg-type]
        if following is None:
            raise StopIteration(result)
        self._current = _driven(following)
        return self._current.send(None)  # its StopIteration is ours
