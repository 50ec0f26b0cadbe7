"""The sockets connected to this instance, by user and session.

Local by nature (a socket lives on one instance); used to cap sockets per user and to
disconnect the sockets of a revoked session. Cross-instance revocation works without
messaging: every instance sweeps its own sockets against the sessions table.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from server.service.identity import Identity

__all__ = ["ConnectedSockets", "SessionDisconnector"]


class ConnectedSockets:
    def __init__(self) -> None:
        self._by_sid: dict[str, Identity] = {}
        self._by_user: dict[uuid.UUID, set[str]] = defaultdict(set)
        # One Identity object per session, however many tabs it has: (identity, sockets).
        self._by_session: dict[uuid.UUID, tuple[Identity, int]] = {}

    def add(self, sid: str, identity: Identity) -> Identity:
        """Register a socket; returns the session's shared Identity to keep for it."""
        shared = self._by_session.get(identity.session_id)
        if shared is not None and shared[0] == identity:
            identity = shared[0]
            self._by_session[identity.session_id] = (identity, shared[1] + 1)
        elif shared is None:
            self._by_session[identity.session_id] = (identity, 1)
        self._by_sid[sid] = identity
        self._by_user[identity.user_id].add(sid)
        return identity

    def remove(self, sid: str) -> Identity | None:
        identity = self._by_sid.pop(sid, None)
        if identity is None:
            return None
        sids = self._by_user.get(identity.user_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_user[identity.user_id]
        shared = self._by_session.get(identity.session_id)
        if shared is not None and shared[0] is identity:
            if shared[1] <= 1:
                del self._by_session[identity.session_id]
            else:
                self._by_session[identity.session_id] = (identity, shared[1] - 1)
        return identity

    def identity(self, sid: str) -> Identity | None:
        return self._by_sid.get(sid)

    def sids(self) -> list[str]:
        """Every socket connected to this instance."""
        return list(self._by_sid)

    def count_for_user(self, user_id: uuid.UUID) -> int:
        return len(self._by_user.get(user_id, ()))

    def __len__(self) -> int:
        return len(self._by_sid)

    def sids_of_session(self, session_id: uuid.UUID) -> list[str]:
        return [sid for sid, ident in self._by_sid.items() if ident.session_id == session_id]

    def sessions_by_user(self) -> dict[uuid.UUID, dict[uuid.UUID, list[str]]]:
        """user -> session -> sids, for the revocation sweep."""
        result: dict[uuid.UUID, dict[uuid.UUID, list[str]]] = {}
        for sid, identity in self._by_sid.items():
            result.setdefault(identity.user_id, {}).setdefault(identity.session_id, []).append(sid)
        return result


class SessionDisconnector(Protocol):
    """Closes the live connections of sessions that just ended (logout, password change,
    account erasure); the realtime adapter's `SessionRevoker` is the implementation."""

    async def disconnect_sessions(self, session_ids: Iterable[uuid.UUID]) -> int: ...
