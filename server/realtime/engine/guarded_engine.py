"""The engine.io server we run: the fast one (`fanout.ChatEngineServer`), with handshakes
admitted through a gate (`handshake_gate`) and frames checked (`frame_guard`).

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`engineio.AsyncServer._handle_connect(environ, transport, jsonp_index)` and the driver
table `_async["websocket"]` (a copy of its own in `ChatEngineServer`).
"""

from __future__ import annotations

from typing import Any

from server.realtime.engine.fanout import ChatEngineServer
from server.realtime.engine.frame_guard import FrameGuard, frame_checked
from server.realtime.engine.handshake_gate import HandshakeGate, refuse_handshake

__all__ = ["GuardedEngineServer"]


class GuardedEngineServer(ChatEngineServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frame_guard = FrameGuard()
        self.handshake_gate: HandshakeGate | None = None
        self._async["websocket"] = frame_checked(self._async["websocket"])

    async def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None
    ) -> Any:
        gate = self.handshake_gate
        if gate is not None:
            refusal = await gate(environ)
            if refusal is not None:
                return await refuse_handshake(self, environ, transport, jsonp_index, refusal)
        return await super()._handle_connect(environ, transport, jsonp_index)
