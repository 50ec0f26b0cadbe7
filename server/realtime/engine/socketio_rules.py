"""Socket.IO v5 as its specification writes it, where python-socketio answers otherwise.

python-socketio 5.18 on our engine passed 13 to 15 of the 32 tests of the protocol's own
suite (socketio/socket.io-protocol, `test-suite/`; most failures were Engine.IO's, see
`engineio_rules`). `SocketIORules` changes these answers to a client's packets
(python-socketio's, then ours, which are the specification's and Node's):

- CONNECT to a namespace nobody serves: CONNECT_ERROR `"Unable to connect"`;
  CONNECT_ERROR `{"message": "Invalid namespace"}`.
- CONNECT whose payload is not an object: handed to `connect` as `auth`; the connection
  is closed.
- ACK whose payload is not an array: handed to the callback; the connection is closed.

`socket_server.ChatSocketServer` closes the connection on an EVENT whose payload is not
a non-empty array; a packet that does not decode at all is `frame_guard`'s. All end the
same way: `UndecodableFrame` raised under `_handle_eio_message`, which closes the session.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`socketio.AsyncServer._handle_connect(eio_sid, namespace, data)` and
`_handle_ack(eio_sid, namespace, id, data)` (called by `_handle_eio_message` with the
decoded packet), `_send_packet(eio_sid, pkt)`, `handlers`, `namespace_handlers`,
`namespaces` (what `_handle_connect` checks before it accepts a namespace).
"""

from __future__ import annotations

from typing import Any

import socketio
from socketio import packet as sio_packet

from server.realtime.engine.exceptions import FrameFault, UndecodableFrame

__all__ = ["INVALID_NAMESPACE", "SocketIORules"]

#: The CONNECT_ERROR payload for a namespace this server does not serve (Node's words).
INVALID_NAMESPACE = {"message": "Invalid namespace"}


class SocketIORules(socketio.AsyncServer):  # type: ignore[misc]
    """A mixin for socketio.AsyncServer: the answers of the module's table."""

    def serves(self, namespace: str) -> bool:
        """Whether a client may connect to `namespace` (python-socketio's own test)."""
        return (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or self.namespaces == "*"
            or namespace in self.namespaces
        )

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        if data is not None and not isinstance(data, dict):
            raise UndecodableFrame(FrameFault.MALFORMED)
        namespace = namespace or "/"
        if not self.serves(namespace):
            refusal = self.packet_class(
                sio_packet.CONNECT_ERROR, data=dict(INVALID_NAMESPACE), namespace=namespace
            )
            await self._send_packet(eio_sid, refusal)
            return None
        return await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_ack(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        if not isinstance(data, list):
            raise UndecodableFrame(FrameFault.MALFORMED)
        return await super()._handle_ack(eio_sid, namespace, id, data)
