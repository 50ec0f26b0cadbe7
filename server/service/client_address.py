"""The caller's address, for per-address limits and the audit log, whatever the transport."""

from __future__ import annotations

__all__ = ["client_address"]

_MAX_LENGTH = 64


def client_address(peer: str | None, forwarded_for: str | None, *, trust_proxy: bool) -> str | None:
    """The TCP peer, or behind a trusted proxy (`TRUST_PROXY=true`) the last
    `X-Forwarded-For` entry, the one the proxy itself appended (a client can prepend
    entries of its choice, never append after the proxy's)."""
    if trust_proxy and forwarded_for:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last[:_MAX_LENGTH]
    return peer
