"""Disconnecting the sockets of revoked or expired sessions, on every instance.

Logout disconnects this instance's sockets of the session at once; every instance also
sweeps its own sockets against the sessions table every few seconds, so a session
revoked anywhere loses its sockets everywhere within one sweep interval.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import socketio

from server.realtime.presence import Presence
from server.service.accounts import Accounts
from server.service.connected_sockets import ConnectedSockets

__all__ = ["SessionRevoker"]

_LOG = logging.getLogger(__name__)


class SessionRevoker:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        connected: ConnectedSockets,
        accounts: Accounts,
        presence: Presence,
    ) -> None:
        self._sio = sio
        self._connected = connected
        self._accounts = accounts
        self._presence = presence

    async def disconnect_sessions(self, session_ids: Iterable[uuid.UUID]) -> int:
        sids = [
            sid for session_id in session_ids for sid in self._connected.sids_of_session(session_id)
        ]
        for sid in sids:
            await self._sio.disconnect(sid)
        return len(sids)

    async def sweep(self) -> int:
        """Disconnect local sockets whose session is no longer active; returns how many."""
        dropped = 0
        for user_id, sessions in self._connected.sessions_by_user().items():
            alive = await self._accounts.active_session_ids(user_id, list(sessions))
            for session_id, sids in sessions.items():
                if session_id not in alive:
                    for sid in sids:
                        await self._sio.disconnect(sid)
                        dropped += 1
        return dropped

    async def run(self, interval_s: float) -> None:
        """The periodic sweep; errors are logged and the loop goes on."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
                await self._presence.refresh()
            except Exception as exc:
                _LOG.warning("session sweep failed: %s", type(exc).__name__)
