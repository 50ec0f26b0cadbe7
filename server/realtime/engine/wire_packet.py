"""JSON for Socket.IO packets: msgspec to encode, the standard library to decode.

python-socketio encodes every packet with `json.dumps(data, separators=(",", ":"))`.
msgspec writes the same compact JSON 7-12x faster (measured here: 0.69 us instead of
4.66 us for an `ai-token` with a 1 KB `partial`), with non-ASCII as UTF-8 rather than
`\\u` escapes, which Socket.IO text frames carry as they are. Decoding stays with the
standard library: it is what python-socketio's handling of malformed client packets is
written against.

Installed through a Packet subclass (`serializer=WirePacket`), never by setting `json=`,
which would rewrite python-socketio's and engine.io's own classes for the whole process.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`socketio.packet.Packet.json`, the module a packet class encodes (`dumps(data,
separators=...)`) and decodes (`loads`) with.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from socketio import packet

__all__ = ["WireJSON", "WirePacket"]

_ENCODER = msgspec.json.Encoder()


class WireJSON:
    """The `json` module interface python-socketio calls."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return _ENCODER.encode(obj).decode()

    loads = staticmethod(json.loads)


class WirePacket(packet.Packet):  # type: ignore[misc]
    json = WireJSON
