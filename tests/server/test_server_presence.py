"""ConnectedSockets: per-user counts, and one Identity object per session."""

from __future__ import annotations

import uuid

from server.service.connected_sockets import ConnectedSockets
from server.service.identity import Identity


def _identity(user: uuid.UUID, session: uuid.UUID) -> Identity:
    return Identity(user_id=user, session_id=session, data_key=b"k" * 32)


def test_sockets_of_one_session_share_one_identity() -> None:
    connected = ConnectedSockets()
    user, session = uuid.uuid4(), uuid.uuid4()
    first = connected.add("a", _identity(user, session))
    second = connected.add("b", _identity(user, session))
    other = connected.add("c", _identity(user, uuid.uuid4()))
    assert second is first and other is not first
    assert connected.count_for_user(user) == 3
    assert sorted(connected.sids_of_session(session)) == ["a", "b"]
    assert connected.remove("a") is first
    assert connected.add("d", _identity(user, session)) is first
    for sid in ("b", "c", "d"):
        connected.remove(sid)
    assert connected.count_for_user(user) == 0 and len(connected) == 0
    fresh = _identity(user, session)
    assert connected.add("e", fresh) is fresh
    assert connected.remove("missing") is None
