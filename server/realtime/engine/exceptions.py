"""What the engine raises of its own, and why a client's frame was refused.

    ValueError
     └── UndecodableFrame     a client frame the libraries cannot decode (carries a FrameFault)

A ValueError, because python-socketio's callers treat a packet's ValueError as "bad
packet"; `socket_server.ChatSocketServer` catches it, and `frame_guard` reports it.
"""

from __future__ import annotations

import enum

__all__ = ["FrameFault", "UndecodableFrame"]


class FrameFault(enum.StrEnum):
    """Why a frame was refused: the `reason` label of `scca_undecodable_frames_total`."""

    EMPTY = "empty"  # an empty text frame
    UNKNOWN_TYPE = "unknown_type"  # an Engine.IO or Socket.IO packet type that does not exist
    UNEXPECTED = "unexpected"  # a real packet type a client never sends, or sent out of place
    MALFORMED = "malformed"  # a packet header (or base64 body) that does not parse
    BAD_JSON = "bad_json"  # a payload that is not JSON
    TOO_DEEP = "too_deep"  # JSON nested deeper than the decoder's recursion allows
    HUGE_NUMBER = "huge_number"  # an integer past Python's 4,300-digit conversion limit


class UndecodableFrame(ValueError):
    """A client frame that cannot be decoded; its connection is closed."""

    def __init__(self, fault: FrameFault) -> None:
        super().__init__(f"undecodable frame: {fault.value}")
        self.fault = fault
