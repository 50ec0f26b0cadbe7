"""Errors of the protocol layer.

ProtocolError            a payload that does not match its contract
  carries `code` (always INVALID_PAYLOAD) and a `message` naming the field
"""

from __future__ import annotations

from protocol.names import ErrorCode

__all__ = ["ProtocolError"]


class ProtocolError(Exception):
    """A payload failed validation; `message` names the field (`sequence: expected int >= 1`)."""

    code = ErrorCode.INVALID_PAYLOAD

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
