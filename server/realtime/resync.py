"""Bringing this instance's sockets back in step after its pub/sub listener had a gap.

Redis pub/sub keeps nothing: while this instance's listener is disconnected (Redis
restarting, a network blip), tokens and messages other instances publish never reach
its sockets, and a tab would stay on a half reply until the user reloads. The listener
(`engine.pubsub_listener`) reports the gap. When it opens, this records how many
messages each joined conversation had; once the listener is subscribed again, every
socket in those conversations gets the current `state` (with `generating`: the reply
so far, if one still streams) and, as `message-added`, every message stored after
that count: what a join with `lastSeq` would give it, without the client asking.
"""

from __future__ import annotations

import logging
import uuid

import msgspec

from protocol.names import ServerEvent
from protocol.socket_events import StatePayload
from server.realtime.conversation_state import replay_messages, state_fields
from server.realtime.scca_namespace import ChatNamespace
from server.service.chat import ChatService
from server.service.identity import Identity
from server.service.metrics import Metrics

__all__ = ["MissedEventsResync"]

_LOG = logging.getLogger(__name__)


class MissedEventsResync:
    def __init__(self, namespace: ChatNamespace, chat: ChatService, metrics: Metrics) -> None:
        self._namespace = namespace
        self._chat = chat
        self._metrics = metrics
        # conversation -> its message count when the gap opened
        self._counts: dict[uuid.UUID, int] = {}

    async def gap_opened(self) -> None:
        counts: dict[uuid.UUID, int] = {}
        for conversation_id, (identity, _) in (
            await self._namespace.joined_conversations()
        ).items():
            try:
                record, _ = await self._chat.open_for_join(identity, conversation_id, counted=False)
                counts[conversation_id] = record.message_count
            except Exception as exc:  # no baseline: state only for this conversation
                _LOG.warning("resync baseline unavailable: %s", type(exc).__name__)
        self._counts = counts

    async def gap_closed(self) -> None:
        counts, self._counts = self._counts, {}
        self._metrics.pubsub_gaps.inc()
        for conversation_id, (identity, sids) in (
            await self._namespace.joined_conversations()
        ).items():
            after = counts.get(conversation_id)
            try:
                await self._bring_in_step(conversation_id, identity, sids, after)
            except Exception as exc:  # e.g. deleted meanwhile: its sockets learn on use
                _LOG.warning("could not resync a conversation: %s", type(exc).__name__)
                continue
            self._metrics.sockets_resynced.inc(len(sids))

    async def _bring_in_step(
        self,
        conversation_id: uuid.UUID,
        identity: Identity,
        sids: list[str],
        after_seq: int | None,
    ) -> None:
        """Its current `state` (with `generating`), then the messages after `after_seq`
        (none when the count before the gap is unknown: `state.messageCount` tells the
        client to fetch), to each socket in the conversation."""
        record, root_ok = await self._chat.open_for_join(identity, conversation_id, counted=False)
        fields = await state_fields(self._chat, record, root_ok)
        state = msgspec.to_builtins(StatePayload(**fields))
        for sid in sids:
            await self._namespace.emit(str(ServerEvent.STATE), state, to=sid)
            if after_seq is None:
                continue
            await replay_messages(
                self._namespace.emit, self._chat, sid, identity, conversation_id, after_seq
            )
