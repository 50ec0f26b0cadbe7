"""The chat service: the one place that composes storage, crypto and ai.

Socket.IO handlers and REST routes are thin adapters over this class. Every method
takes the caller's `Identity`; row-level security scopes each transaction to it, so a
conversation of someone else is indistinguishable from a missing one.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from msgspec import UNSET

import crypto
import storage
from ai import ChatMessage, ProviderRegistry
from protocol import decode
from protocol.exceptions import ProtocolError
from protocol.names import ServerEvent
from protocol.socket_events import (
    ConversationTruncated,
    GeneratingState,
    MessageAdded,
    NeedsRegeneration,
    TypingStart,
)
from server.service import exceptions as errors
from server.service.broadcaster import Broadcaster
from server.service.chain_append import append_message
from server.service.event_limits import Action, EventLimiter
from server.service.generation_tracker import GenerationTracker
from server.service.generations import CancelMode, RunningGeneration
from server.service.identity import Identity
from server.service.keyring import (
    current_identity,
    new_wrapped_conversation_key,
    open_conversation_keys,
    open_keys,
)
from server.service.lost_replies import LostReplies
from server.service.replies import ReplyJob, ReplyRunner
from server.service.shared_chat import SharedChat
from server.service.stored_messages import DecodedMessage, decode_message
from server.service.timefmt import iso, now_iso
from server.service.titles import seal_clear_titles, seal_title, titled, with_title

__all__ = [
    "ChatService",
    "EditResult",
    "SendStart",
    "Viewport",
]

_LOG = logging.getLogger(__name__)
TRUNCATION_WARNING = "Messages after this point have been permanently deleted"
REPLAY_LIMIT = 1000

# A draining instance's hint: its clients reconnect elsewhere within about a second.
_DRAIN_RETRY_AFTER_S = 1.0
# A lock younger than this may belong to a send whose reply is not registered yet.
_DEAD_LOCK_MIN_AGE = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class Viewport:
    conversation: storage.ConversationRecord
    from_seq: int
    to_seq: int
    messages: list[DecodedMessage]
    integrity_valid: bool
    last_valid_sequence: int


@dataclass(frozen=True, slots=True)
class EditResult:
    edited_sequence: int
    deleted_count: int
    reclaimed_bytes: int
    new_message_count: int
    needs_regeneration_from: int
    regenerating: RunningGeneration | None


@dataclass(frozen=True, slots=True)
class SendStart:
    """A send that was accepted: the user's message is stored and the reply is running.

    For a repeated `clientMsgId`, `duplicate` is True and `generation` is the first send's
    generation if it still runs here (else None: it has finished).
    """

    user_sequence: int
    sequence: int
    generation: RunningGeneration | None
    duplicate: bool = False
    message_count: int = 0


class ChatService:
    """Create, join, read, send, edit, stop: every chat operation, for both transports."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: ProviderRegistry,
        broadcaster: Broadcaster,
        tracker: GenerationTracker,
        replies: ReplyRunner,
        lost_replies: LostReplies,
        *,
        limiter: EventLimiter,
        max_conversations_per_user: int,
        lock_ttl_s: float,
        shared: SharedChat | None = None,
    ) -> None:
        self._pool = pool
        self._limiter = limiter
        self._registry = registry
        self._broadcast = broadcaster
        self._tracker = tracker
        self._replies = replies
        self._lost = lost_replies
        self._max_conversations = max_conversations_per_user
        self._lock_ttl_s = lock_ttl_s
        self._shared = shared
        self._closing = False

    def close(self) -> None:
        """Shutting down: running replies may finish, new ones are refused (UNAVAILABLE),
        so the client retries on another instance."""
        self._closing = True

    def _refuse_new_replies(self) -> None:
        if self._closing:
            raise errors.Unavailable(
                "The server is restarting; retry", retry_after=_DRAIN_RETRY_AFTER_S
            )

    # ── conversations ───────────────────────────────────────────────────────

    async def create_conversation(
        self, identity: Identity, *, title: str | None, model: str | None
    ) -> storage.ConversationRecord:
        await self._limiter.check(identity.user_id, Action.CREATE)
        model = (model or self._registry.default_model).strip()
        if not model or len(model) > 100 or not model.isprintable():
            raise errors.InvalidInput("model: expected a model name of at most 100 characters")
        try:
            self._registry.provider_for(model)
        except Exception as exc:  # the registry's own typed error: an unroutable model
            raise errors.InvalidInput(
                f"model: {getattr(exc, 'message', 'unknown model')}"
            ) from None
        conversation_id = uuid.uuid4()
        async with storage.user_tx(self._pool, identity.user_id) as con:
            # First, before any other lock: the new key is wrapped under the data key a
            # concurrent password change would re-wrap, never under a retired one.
            owner = await current_identity(con, identity, lock=True)
            if await storage.count_conversations(con) >= self._max_conversations:
                raise errors.LimitExceeded(
                    f"At most {self._max_conversations} conversations per user"
                )
            wrapped = new_wrapped_conversation_key(owner, conversation_id)
            keys = open_conversation_keys(owner, conversation_id, wrapped, 1)
            record = await storage.create_conversation(
                con,
                conversation_id=conversation_id,
                user_id=identity.user_id,
                sealed_title=seal_title(keys, conversation_id, 1, title),
                model=model,
                wrapped_key=wrapped,
            )
            assert record is not None  # only a direct pair can already exist
            await storage.append_audit(
                con, user_id=identity.user_id, action="create", conversation_id=conversation_id
            )
        return dataclasses.replace(record, title=title)

    async def list_conversations(
        self, identity: Identity, *, limit: int, offset: int
    ) -> tuple[list[storage.ConversationRecord], bool]:
        """A page of live conversations, titles opened (each under its own key)."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await seal_clear_titles(con, identity)
            records = await storage.list_conversations(con, limit=limit + 1, offset=offset)
            page = [await titled(con, identity, record) for record in records[:limit]]
        return page, len(records) > limit

    async def open_for_join(
        self, identity: Identity, conversation_id: uuid.UUID, *, counted: bool = True
    ) -> tuple[storage.ConversationRecord, bool]:
        """The conversation, and whether its stored root is the last message's link (O(1)).

        A join the user asked for spends their join budget; the server's own resync
        after a pub/sub gap (`counted=False`) does not."""
        if counted:
            await self._limiter.check(identity.user_id, Action.JOIN)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await seal_clear_titles(con, identity)
            record = await storage.get_conversation(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            last = (
                await storage.get_message(con, conversation_id, record.message_count)
                if record.message_count
                else None
            )
            record = await titled(con, identity, record)
        stored_link = last.link if last is not None else None
        return record, stored_link == record.merkle_root

    async def rename(
        self, identity: Identity, conversation_id: uuid.UUID, title: str | None
    ) -> storage.ConversationRecord:
        """Set or clear the title; it is sealed under the key the row holds (locked, so a
        key rotation cannot slip in between)."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            await _require_admin(con, identity, record, "rename it")
            keys = await open_keys(con, identity, record)
            sealed = seal_title(keys, conversation_id, record.key_version, title)
            renamed = await storage.rename_conversation(con, conversation_id, sealed)
        if renamed is None:
            raise errors.NotFound()
        return dataclasses.replace(renamed, title=title)

    async def delete(self, identity: Identity, conversation_id: uuid.UUID) -> str:
        """Soft delete: gone for every event and route; cancels a running reply. A
        group is deleted by its admins only, for everyone; a direct conversation is not
        deleted by one of its two people."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id)
            if record is not None:
                await _require_admin(con, identity, record, "delete it")
            await storage.cancel_generation(con, conversation_id)
            deleted_at = await storage.soft_delete_conversation(con, conversation_id)
            if deleted_at is None:
                raise errors.NotFound()
            await storage.append_audit(
                con, user_id=identity.user_id, action="delete", conversation_id=conversation_id
            )
        await self._tracker.cancel(conversation_id, CancelMode.DISCARD)
        return iso(deleted_at)

    # ── reading ─────────────────────────────────────────────────────────────

    async def replay(
        self, identity: Identity, conversation_id: uuid.UUID, after_seq: int
    ) -> list[DecodedMessage]:
        """The messages after `after_seq` (at most REPLAY_LIMIT), decrypted, in order.

        The row is read FOR SHARE: a key rotation cannot commit between it and the
        messages, so they all belong to the key version read.
        """
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation_for_share(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            if after_seq >= record.message_count:
                return []  # nothing missed (and no sequence past PostgreSQL's integers)
            rows = await storage.list_messages(
                con, conversation_id, from_seq=after_seq + 1, limit=REPLAY_LIMIT
            )
            keys = await open_keys(con, identity, record)
        return [decode_message(keys, row) for row in rows]

    async def viewport(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        *,
        from_seq: int | None,
        to_seq: int | None,
    ) -> Viewport:
        """Messages `from..to` (default: the last 50), decrypted, with the chain verified.

        The chain is verified over the whole conversation (HMACs only, no decryption),
        so `integrity` reflects every stored message, not only the viewport. The row is
        read FOR SHARE (see `replay`). As costly as a join, and counted as one.
        """
        await self._limiter.check(identity.user_id, Action.JOIN)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await seal_clear_titles(con, identity)
            record = await storage.get_conversation_for_share(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            count = record.message_count
            to = min(to_seq if to_seq is not None else count, count)
            start = from_seq if from_seq is not None else max(1, to - 49)
            all_rows = await storage.list_messages(con, conversation_id)
            keys = await open_keys(con, identity, record)
        bad = crypto.verify_chain(
            keys.integrity, [r.token for r in all_rows], [r.link for r in all_rows]
        )
        stored_root = all_rows[-1].link if all_rows else None
        root_ok = stored_root == record.merkle_root and len(all_rows) == count
        # `bad` is the 0-based index of the first bad link, so it is also the last good seq.
        last_valid = bad if bad is not None else len(all_rows)
        valid = bad is None and root_ok
        rows = [r for r in all_rows if start <= r.seq <= to]
        return Viewport(
            conversation=with_title(keys, record),
            from_seq=start,
            to_seq=to,
            messages=[decode_message(keys, row) for row in rows],
            integrity_valid=valid,
            last_valid_sequence=last_valid,
        )

    async def generating_state(
        self, conversation_id: uuid.UUID, message_count: int
    ) -> GeneratingState | None:
        """What a running reply has streamed so far, on any instance (for late joiners).

        Call it after the socket entered the room: see `server.tracker`.
        """
        state = await self._tracker.snapshot(conversation_id)
        if state is None or state.sequence <= message_count:
            return None  # already stored: the joiner reads it as a message
        return state

    # ── sending ─────────────────────────────────────────────────────────────

    async def begin_send(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        content: str,
        *,
        client_msg_id: str | None = None,
        origin_sid: str | None = None,
    ) -> SendStart:
        """Store the user's message (committed) and start the reply; BUSY if one runs.

        The reply runs in its own task so a client that goes away does not cancel it.
        Attach listeners to `SendStart.generation` before awaiting anything. In a direct
        or group conversation the message is a person's (`SharedChat.send`): stored and
        announced, with no reply (`generation` None).
        """
        await self._limiter.check(identity.user_id, Action.SEND)
        _check_text(content, "content", client_msg_id)
        try:
            return await self._begin_ai_send(
                identity, conversation_id, content, client_msg_id, origin_sid
            )
        except _PeopleConversation:
            pass
        if self._shared is None:
            raise errors.NotSupported("This server does not serve shared conversations")
        message, count, duplicate = await self._shared.send(
            identity,
            conversation_id,
            content,
            client_msg_id=client_msg_id,
            origin_sid=origin_sid,
            counted=True,
        )
        return SendStart(
            user_sequence=message.sequence,
            sequence=message.sequence,
            generation=None,
            duplicate=duplicate,
            message_count=count,
        )

    async def _begin_ai_send(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        content: str,
        client_msg_id: str | None,
        origin_sid: str | None,
    ) -> SendStart:
        self._refuse_new_replies()
        owner = uuid.uuid4()
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            if record.kind != "ai":
                raise _PeopleConversation()
            if client_msg_id is not None:
                first = await storage.find_by_client_msg_id(con, conversation_id, client_msg_id)
                if first is not None:
                    return self._duplicate(conversation_id, first.seq, record.message_count)
            user_seq = record.message_count + 1
            lost_sequence: int | None = None
            if not await self._acquire(con, identity, conversation_id, owner, user_seq + 1):
                lost_sequence = await self._release_dead_lock(con, conversation_id)
                if lost_sequence is None or not await self._acquire(
                    con, identity, conversation_id, owner, user_seq + 1
                ):
                    raise errors.Busy()
            keys = await open_keys(con, identity, record)
            history = await self._replies.load_history(con, conversation_id, keys, user_seq - 1)
            history.append(ChatMessage(role="user", content=content))
            inserted = await append_message(
                con,
                keys,
                record,
                content,
                role=crypto.Role.USER,
                sender_id=identity.user_id,
                client_msg_id=client_msg_id,
            )
        generation = RunningGeneration(
            conversation_id=conversation_id,
            user_id=identity.user_id,
            owner=owner,
            sequence=user_seq + 1,
        )
        if lost_sequence is not None:
            await self._lost.announce(conversation_id, lost_sequence)
        await self._announce_user_message(
            identity,
            conversation_id,
            user_seq,
            content,
            iso(inserted.created_at),
            client_msg_id,
            origin_sid,
        )
        self._replies.start(ReplyJob(generation, identity, record.model, history, keys))
        return SendStart(
            user_sequence=user_seq,
            sequence=user_seq + 1,
            generation=generation,
            message_count=user_seq,
        )

    async def _acquire(
        self,
        con: storage.Connection,
        identity: Identity,
        conversation_id: uuid.UUID,
        owner: uuid.UUID,
        sequence: int,
    ) -> bool:
        """Take the conversation's generation lock (PostgreSQL, expiring) for `sequence`."""
        return await storage.acquire_generation(
            con,
            conversation_id=conversation_id,
            user_id=identity.user_id,
            owner=owner,
            sequence=sequence,
            ttl_seconds=self._lock_ttl_s,
        )

    async def _release_dead_lock(
        self, con: storage.Connection, conversation_id: uuid.UUID
    ) -> int | None:
        """Release a lock whose reply is known to be dead (its process is gone); returns
        that reply's sequence. Unknown is not dead: then the lock stays (BUSY), and with
        many instances the lost-reply sweep decides within seconds."""
        lock = await storage.get_generation(con, conversation_id)
        if lock is None or datetime.now(UTC) - lock.started_at < _DEAD_LOCK_MIN_AGE:
            return None  # a reply starting right now is not registered anywhere yet
        if await self._tracker.owner_alive(conversation_id, lock.owner) is not False:
            return None
        if not await storage.release_generation(con, conversation_id, lock.owner):
            return None
        return lock.sequence

    def _duplicate(self, conversation_id: uuid.UUID, user_seq: int, count: int) -> SendStart:
        running = self._replies.running(conversation_id)
        generation = running if running is not None and running.sequence == user_seq + 1 else None
        return SendStart(
            user_sequence=user_seq,
            sequence=user_seq + 1,
            generation=generation,
            duplicate=True,
            message_count=count,
        )

    async def _announce_user_message(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        user_seq: int,
        content: str,
        timestamp: str,
        client_msg_id: str | None,
        origin_sid: str | None,
    ) -> None:
        """Tell the other tabs: the stored user message [ext], then the seed's typing-start."""
        added = MessageAdded(
            sequence=user_seq,
            role="user",
            content=content,
            timestamp=timestamp,
            client_msg_id=client_msg_id or UNSET,
        )
        await self._broadcast.to_conversation(
            conversation_id, ServerEvent.MESSAGE_ADDED, added, skip_sid=origin_sid
        )
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.TYPING_START,
            TypingStart(user_id=str(identity.user_id), timestamp=now_iso()),
            skip_sid=origin_sid,
        )

    async def stop(self, identity: Identity, conversation_id: uuid.UUID) -> bool:
        """Stop the running reply; what was streamed so far is kept, marked stopped."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            running = await storage.get_generation(con, conversation_id)
        if running is None:
            return False
        return await self._tracker.cancel(conversation_id, CancelMode.STOP)

    # ── destructive edit ────────────────────────────────────────────────────

    async def edit(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        sequence: int,
        new_content: str,
    ) -> EditResult:
        """Replace message `sequence`, delete everything after it for good, then regenerate.

        The running reply's lock is deleted in the same transaction, so it can never
        commit after this edit; it is then stopped and awaited before anything is sent.
        """
        await self._limiter.check(identity.user_id, Action.EDIT)
        _check_text(new_content, "newContent")
        self._refuse_new_replies()  # an edit regenerates: the next instance will do it
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            if record.kind != "ai":
                # People's messages are edited in place, keeping the chain: not this
                # destructive edit, which would delete everyone's later messages.
                raise errors.NotSupported("The destructive edit is for ai conversations")
            if sequence > record.message_count:
                raise errors.EditRejected(
                    f"sequence: message {sequence} does not exist "
                    f"(the conversation has {record.message_count})"
                )
            target = await storage.get_message(con, conversation_id, sequence)
            if target is None:
                raise errors.EditRejected(f"Message {sequence} not found")
            previous = (
                await storage.get_message(con, conversation_id, sequence - 1)
                if sequence > 1
                else None
            )
            await storage.cancel_generation(con, conversation_id)
            keys = await open_keys(con, identity, record)
            role = crypto.Role(target.role)
            deleted, reclaimed = await storage.delete_after(con, conversation_id, sequence)
            token = crypto.pack(keys, conversation_id, sequence, role, new_content)
            link = crypto.next_link(keys.integrity, previous.link if previous else None, token)
            await storage.replace_message(con, conversation_id, sequence, token=token, link=link)
            await storage.set_head(con, conversation_id, message_count=sequence, merkle_root=link)
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="edit",
                conversation_id=conversation_id,
                details={
                    "sequence": sequence,
                    "deletedCount": deleted,
                    "spaceReclaimed": reclaimed,
                },
            )
        await self._tracker.cancel(conversation_id, CancelMode.DISCARD)
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.CONVERSATION_TRUNCATED,
            ConversationTruncated(
                edited_sequence=sequence,
                deleted_count=deleted,
                new_message_count=sequence,
                by_user=str(identity.user_id),
                timestamp=now_iso(),
                warning=TRUNCATION_WARNING,
            ),
        )
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.NEEDS_REGENERATION,
            NeedsRegeneration(from_sequence=sequence + 1, reason="edit", edited_sequence=sequence),
        )
        regenerating = None
        if role is crypto.Role.USER:
            regenerating = await self._start_regeneration(identity, conversation_id, sequence)
        return EditResult(
            edited_sequence=sequence,
            deleted_count=deleted,
            reclaimed_bytes=reclaimed,
            new_message_count=sequence,
            needs_regeneration_from=sequence + 1,
            regenerating=regenerating,
        )

    async def _start_regeneration(
        self, identity: Identity, conversation_id: uuid.UUID, user_seq: int
    ) -> RunningGeneration | None:
        """The seed's promise: "Auto-trigger AI regeneration from N+1"."""
        if self._closing:
            return None
        owner = uuid.uuid4()
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None or record.message_count != user_seq:
                return None  # something newer happened meanwhile; nothing to regenerate
            if not await self._acquire(con, identity, conversation_id, owner, user_seq + 1):
                return None
            keys = await open_keys(con, identity, record)
            history = await self._replies.load_history(con, conversation_id, keys, user_seq)
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="regenerate",
                conversation_id=conversation_id,
                details={"sequence": user_seq + 1},
            )
        generation = RunningGeneration(
            conversation_id=conversation_id,
            user_id=identity.user_id,
            owner=owner,
            sequence=user_seq + 1,
        )
        self._replies.start(ReplyJob(generation, identity, record.model, history, keys))
        return generation


async def _require_admin(
    con: storage.Connection,
    identity: Identity,
    record: storage.ConversationRecord,
    what: str,
) -> None:
    """A group's name and life are its admins'; a direct conversation has neither to
    change (leaving one comes with membership changes); an `ai` one is its owner's."""
    if record.kind == "direct":
        raise errors.NotSupported(f"A direct conversation belongs to both: one cannot {what}")
    if record.kind == "group":
        member = await storage.get_member(con, record.id, identity.user_id)
        if member is None or member.role != "admin":
            raise errors.Forbidden(f"Only a group's admins {what}")


class _PeopleConversation(Exception):
    """Internal: the conversation of a send is a direct or group one."""


def _check_text(text: str, field: str, client_msg_id: str | None = None) -> None:
    """What a person writes, checked here for every transport: non-empty after trimming,
    storable UTF-8, and an idempotency key of exactly the documented characters."""
    try:
        decode.check_text(text, field)
        decode.check_client_msg_id(client_msg_id)
    except ProtocolError as exc:
        raise errors.InvalidInput(exc.message) from None
