"""The engine.io server we run: the fast one (`fanout.ChatEngineServer`), with handshakes
admitted through a gate (`handshake_gate`) and frames checked (`frame_guard`).

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`engineio.AsyncServer._handle_connect(environ, transport, jsonp_index)` and the driver
table `_async["websocket"]` (a copy of its own in `ChatEngineServer`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from server.realtime.engine.chained import Chained
from server.realtime.engine.fanout import ChatEngineServer
from server.realtime.engine.frame_guard import FrameGuard, frame_checked
from server.realtime.engine.handshake_gate import (
    HandshakeGate,
    HandshakeRefusal,
    refuse_handshake,
)

__all__ = ["GuardedEngineServer"]

# What the gate decided on, for `_after_gate`: the server, engine.io's own
# `_handle_connect` (bound), and its arguments.
_Handshake = tuple["GuardedEngineServer", Any, dict[str, Any], str, "int | None"]


def _after_gate(handshake: _Handshake, refusal: HandshakeRefusal | None) -> Awaitable[Any]:
    engine, connect, environ, transport, jsonp_index = handshake
    if refusal is None:
        answer: Awaitable[Any] = connect(environ, transport, jsonp_index)
        return answer
    return refuse_handshake(engine, environ, transport, jsonp_index, refusal)


class GuardedEngineServer(ChatEngineServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frame_guard = FrameGuard()
        self.handshake_gate: HandshakeGate | None = None
        self._async["websocket"] = frame_checked(self._async["websocket"])

    def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None
    ) -> Awaitable[Any]:
        """The gate, then engine.io's handshake. Not a coroutine: a websocket opened by
        its handshake lives inside engine.io's `_handle_connect`, and a coroutine of ours
        around it would cost every such socket its frame (`chained`)."""
        connect = super()._handle_connect
        gate = self.handshake_gate
        if gate is None:
            answer: Awaitable[Any] = connect(environ, transport, jsonp_index)
            return answer
        handshake: _Handshake = (self, connect, environ, transport, jsonp_index)
        return Chained(gate(environ), _after_gate, handshake)
