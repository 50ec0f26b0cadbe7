"""Shared conversations: direct messages and groups, and every conversation as a list.

A `direct` conversation is two people, one per pair (get-or-create); a `group` has a
name, a description and a category (seed 003) and members with roles (seed 004: the
creator is admin, only admins add). Each has one random key, sealed to every member's
public key (`member_keys`), so an admin adds someone who is offline. People's messages
are appended to the same chain as an `ai` conversation's, with their author; nobody's
send starts a model reply here (an AI participant is a later feature).

Events: `message-added` (with `conversationId`, `id`, `senderId`, `sender`) to the
conversation's room, `conversation-updated` to each member's `user:{id}` room,
`member-added` to the room and `conversation-added` to the new member's own room.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import msgspec
from msgspec import UNSET

import crypto
import storage
from protocol import decode
from protocol.exceptions import ProtocolError
from protocol.names import ServerEvent
from protocol.shared import ConversationItem, LastMessage, Participant, PublicUser
from protocol.socket_events import (
    ConversationAdded,
    ConversationUpdated,
    MemberAdded,
    MessageAdded,
)
from server.service import exceptions as errors
from server.service.broadcaster import Broadcaster
from server.service.chain_append import append_message
from server.service.conversation_fields import Purpose, open_field, seal_field
from server.service.event_limits import Action, EventLimiter
from server.service.identity import Identity
from server.service.keyring import open_keys
from server.service.member_keys import open_shared_key, seal_for_member
from server.service.profiles import public_users
from server.service.stored_messages import DecodedMessage, decode_message
from server.service.timefmt import iso
from server.service.titles import seal_clear_titles

__all__ = ["GROUP_CATEGORIES", "GroupLimits", "PeopleMessage", "SharedChat"]

_LOG = logging.getLogger(__name__)
GROUP_CATEGORIES = ("GENERAL", "FOOD_SHARE", "NEWS", "RECIPES", "TIPS", "LOCAL_EVENTS")
_PREVIEW = 100
_MAX_GROUP_NAME = 100
_MAX_DESCRIPTION = 1000
_NO_PERSON = "No such person"
_MAX_SEQUENCE = 2**31 - 1  # sequences are PostgreSQL integers


@dataclass(frozen=True, slots=True)
class GroupLimits:
    members_per_group: int = 256
    groups_per_user: int = 500


@dataclass(frozen=True, slots=True)
class PeopleMessage:
    """A person's message as the shared-conversation routes show it."""

    id: str
    conversation_id: str
    sequence: int
    sender_id: str | None
    sender: PublicUser | None
    role: str
    content: str | None
    timestamp: str
    client_msg_id: str | None
    error: str | None = None


def _direct_pair(a: uuid.UUID, b: uuid.UUID) -> str:
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


def _text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise errors.InvalidInput(f"{field}: required")
        return None
    value = value.strip()
    if not value and not required:
        return None
    if not value or len(value) > limit:
        raise errors.InvalidInput(f"{field}: expected 1 to {limit} characters")
    try:
        decode.check_text(value, field)
    except ProtocolError as exc:
        raise errors.InvalidInput(exc.message) from None
    return value


class SharedChat:
    """Create direct and group conversations, add members, list, read and send."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broadcaster: Broadcaster,
        *,
        limiter: EventLimiter,
        limits: GroupLimits,
        default_model: str,
    ) -> None:
        self._pool = pool
        self._broadcast = broadcaster
        self._limiter = limiter
        self._limits = limits
        self._model = default_model

    # ── creating ────────────────────────────────────────────────────────────

    async def create_direct(
        self, identity: Identity, other_id: uuid.UUID
    ) -> tuple[ConversationItem, bool]:
        """The direct conversation of the caller and `other_id`, created if there is none
        yet; True when it was created now."""
        if other_id == identity.user_id:
            raise errors.InvalidInput("userId: a direct conversation needs another person")
        pair = _direct_pair(identity.user_id, other_id)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_direct_conversation(con, pair)
            created = False
            if record is None:
                # Only a create spends the create budget; finding the pair's is a read.
                await self._limiter.check(identity.user_id, Action.CREATE)
                keys = await self._public_keys(con, [identity.user_id, other_id])
                conversation_id = uuid.uuid4()
                key = crypto.new_key()
                record = await storage.create_conversation(
                    con,
                    conversation_id=conversation_id,
                    user_id=identity.user_id,
                    sealed_title=None,
                    model=self._model,
                    wrapped_key=None,
                    kind="direct",
                    direct_pair=pair,
                    members=[
                        storage.NewMember(
                            user_id=uid,
                            role="member",
                            sealed_key=seal_for_member(key, conversation_id, 1, uid, keys[uid]),
                        )
                        for uid in (identity.user_id, other_id)
                    ],
                )
                if record is None:  # the other person created it a moment ago
                    record = await storage.get_direct_conversation(con, pair)
                    if record is None:
                        raise errors.Conflict("The conversation changed meanwhile; retry")
                else:
                    created = True
                    await storage.append_audit(
                        con,
                        user_id=identity.user_id,
                        action="create_direct",
                        conversation_id=record.id,
                    )
            item = (await self._items(con, identity, [record]))[0]
        if created:
            await self._announce_new([identity.user_id, other_id], item)
        return item, created

    async def create_group(
        self,
        identity: Identity,
        *,
        name: str,
        description: str | None,
        category: str | None,
        member_ids: Sequence[uuid.UUID],
    ) -> ConversationItem:
        """A group: the caller is its admin, `member_ids` its members."""
        name_text = _text(name, "name", _MAX_GROUP_NAME, required=True)
        assert name_text is not None  # required
        description = _text(description, "description", _MAX_DESCRIPTION, required=False)
        category = "GENERAL" if category is None else category
        if category not in GROUP_CATEGORIES:
            raise errors.InvalidInput(f"category: expected one of {', '.join(GROUP_CATEGORIES)}")
        others = [m for m in dict.fromkeys(member_ids) if m != identity.user_id]
        if len(others) + 1 > self._limits.members_per_group:
            raise errors.LimitExceeded(
                f"At most {self._limits.members_per_group} members per group"
            )
        await self._limiter.check(identity.user_id, Action.CREATE)
        conversation_id = uuid.uuid4()
        async with storage.user_tx(self._pool, identity.user_id) as con:
            # Groups one created: being added to others' groups spends nobody's quota.
            if await storage.count_created(con, kind="group") >= self._limits.groups_per_user:
                raise errors.LimitExceeded(
                    f"At most {self._limits.groups_per_user} groups per user"
                )
            keys = await self._public_keys(con, [identity.user_id, *others])
            key = crypto.new_key()
            derived = crypto.derive_conversation_keys(key, conversation_id, 1)
            record = await storage.create_conversation(
                con,
                conversation_id=conversation_id,
                user_id=identity.user_id,
                sealed_title=seal_field(derived, conversation_id, 1, Purpose.TITLE, name_text),
                sealed_description=(
                    None
                    if description is None
                    else seal_field(derived, conversation_id, 1, Purpose.DESCRIPTION, description)
                ),
                category=category,
                model=self._model,
                wrapped_key=None,
                kind="group",
                members=[
                    storage.NewMember(
                        user_id=uid,
                        role="admin" if uid == identity.user_id else "member",
                        sealed_key=seal_for_member(key, conversation_id, 1, uid, keys[uid]),
                    )
                    for uid in (identity.user_id, *others)
                ],
            )
            assert record is not None  # only a direct pair can already exist
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="create_group",
                conversation_id=conversation_id,
                details={"members": len(others) + 1},
            )
            item = (await self._items(con, identity, [record]))[0]
        await self._announce_new([identity.user_id, *others], item)
        return item

    async def add_member(
        self, identity: Identity, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> MemberAdded:
        """An admin adds someone to a group, online or not: the key is sealed to their
        public key. Forbidden for a member who is not admin, NotSupported for a direct or
        `ai` conversation, Conflict for a member already in, KeysMissing for someone
        without a key pair yet."""
        await self._limiter.check(identity.user_id, Action.ADD_MEMBER)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            if record.kind != "group":
                raise errors.NotSupported("Members are added to groups only")
            me = await storage.get_member(con, conversation_id, identity.user_id)
            if me is None or me.role != "admin":
                raise errors.Forbidden("Only a group's admins add members")
            members = await storage.list_members(con, conversation_id)
            if any(m.user_id == user_id for m in members):
                raise errors.Conflict("Already a member")
            if len(members) >= self._limits.members_per_group:
                raise errors.LimitExceeded(
                    f"At most {self._limits.members_per_group} members per group"
                )
            public = await self._public_keys(con, [user_id])
            key = await open_shared_key(con, identity, record)
            await storage.add_members(
                con,
                conversation_id,
                [
                    storage.NewMember(
                        user_id=user_id,
                        role="member",
                        sealed_key=seal_for_member(
                            key, conversation_id, record.key_version, user_id, public[user_id]
                        ),
                    )
                ],
                added_by=identity.user_id,
                key_version=record.key_version,
            )
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="add_member",
                conversation_id=conversation_id,
            )
            item = (await self._items(con, identity, [record]))[0]
        added = MemberAdded(
            conversation_id=str(conversation_id),
            user_id=str(user_id),
            role="member",
            by=str(identity.user_id),
        )
        await self._broadcast.to_conversation(conversation_id, ServerEvent.MEMBER_ADDED, added)
        # The newcomer's unread count is theirs, not the admin's.
        fresh = msgspec.structs.replace(item, unread_count=record.message_count)
        await self._broadcast.to_user(
            user_id, ServerEvent.CONVERSATION_ADDED, ConversationAdded(conversation=fresh)
        )
        return added

    async def _public_keys(
        self, con: storage.Connection, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, bytes]:
        profiles = await storage.get_profiles(con, user_ids)
        found: dict[uuid.UUID, bytes] = {}
        for user_id in user_ids:
            profile = profiles.get(user_id)
            if profile is None:
                raise errors.NotFound(f"{_NO_PERSON}: {user_id}")
            if profile.public_key is None:
                raise errors.KeysMissing(
                    f"{user_id} has not signed in since keys were introduced; add them after"
                    " their next sign-in"
                )
            found[user_id] = profile.public_key
        return found

    async def _announce_new(
        self, member_ids: Sequence[uuid.UUID], item: ConversationItem
    ) -> None:
        for user_id in member_ids:
            await self._broadcast.to_user(
                user_id, ServerEvent.CONVERSATION_ADDED, ConversationAdded(conversation=item)
            )

    # ── reading ─────────────────────────────────────────────────────────────

    async def list_conversations(
        self, identity: Identity, *, limit: int, offset: int
    ) -> tuple[list[ConversationItem], bool]:
        """Every live conversation of the caller (each kind), most recent message first."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await seal_clear_titles(con, identity)
            records = await storage.list_conversations(con, limit=limit + 1, offset=offset)
            items = await self._items(con, identity, records[:limit])
        return items, len(records) > limit

    async def get(self, identity: Identity, conversation_id: uuid.UUID) -> ConversationItem:
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            return (await self._items(con, identity, [record]))[0]

    async def _items(
        self,
        con: storage.Connection,
        identity: Identity,
        records: Sequence[storage.ConversationRecord],
    ) -> list[ConversationItem]:
        ids = [r.id for r in records]
        members = await storage.list_members_of(con, ids)
        lasts = await storage.last_messages(con, ids)
        people = await public_users(
            con, (m.user_id for ms in members.values() for m in ms)
        )
        items = []
        for record in records:
            try:
                keys = await open_keys(con, identity, record)
            except (crypto.CryptoError, ValueError, errors.NotFound, errors.KeysMissing):
                # One conversation whose key does not open must not take the list down.
                _LOG.warning("conversation key failed to open conversation=%s", record.id)
                keys = None
            mine = next((m for m in members[record.id] if m.user_id == identity.user_id), None)
            last = lasts.get(record.id)
            items.append(
                ConversationItem(
                    id=str(record.id),
                    title=_opened(keys, record, Purpose.TITLE, record.sealed_title)
                    if record.sealed_title is not None
                    else record.title,
                    model=record.model,
                    message_count=record.message_count,
                    created_at=iso(record.created_at),
                    updated_at=iso(record.updated_at),
                    merkle_root=record.merkle_root.hex() if record.merkle_root else None,
                    kind=record.kind,
                    participants=[
                        Participant(
                            user_id=str(m.user_id),
                            role=m.role,
                            joined_at=iso(m.joined_at),
                            user=people[m.user_id],
                        )
                        for m in members[record.id]
                    ],
                    last_message=_last(keys, last) if last is not None else None,
                    unread_count=(
                        0
                        if record.kind == "ai" or mine is None
                        else max(0, record.message_count - mine.last_read_seq)
                    ),
                    description=_opened(
                        keys, record, Purpose.DESCRIPTION, record.sealed_description
                    ),
                    category=record.category,
                )
            )
        return items

    async def messages(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        offset: int = 0,
        before: int | None = None,
        after: int | None = None,
    ) -> list[PeopleMessage]:
        """A page of messages, oldest first: the newest `limit` (skipping `offset`, or
        below `before`), or the first `limit` after `after`. Reading marks them read."""
        for name, value in (("after", after), ("before", before)):
            if value is not None and not 0 <= value < _MAX_SEQUENCE:
                raise errors.InvalidInput(f"{name}: expected a sequence below {_MAX_SEQUENCE}")
        await self._limiter.check(identity.user_id, Action.JOIN)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation_for_share(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            if after is not None:
                rows = await storage.list_messages(
                    con, conversation_id, from_seq=after + 1, limit=limit
                )
            else:
                rows = await storage.list_messages_before(
                    con, conversation_id, before_seq=before, limit=limit, offset=offset
                )
            keys = await open_keys(con, identity, record)
            people = await public_users(con, (r.sender_id for r in rows if r.sender_id))
            if rows and record.kind != "ai":
                await storage.mark_read(con, conversation_id, identity.user_id, rows[-1].seq)
        return [_people_message(decode_message(keys, r), r, people) for r in rows]

    # ── sending ─────────────────────────────────────────────────────────────

    async def send(
        self,
        identity: Identity,
        conversation_id: uuid.UUID,
        content: str,
        *,
        client_msg_id: str | None = None,
        origin_sid: str | None = None,
        counted: bool = False,
    ) -> tuple[PeopleMessage, int, bool]:
        """Store a person's message in a direct or group conversation (committed before
        anyone hears of it). Returns the message, the new message count, and whether it
        is a repeat of an earlier send with the same `client_msg_id`. `counted`: the
        caller has already counted this send (`ChatService.begin_send`)."""
        if not counted:
            await self._limiter.check(identity.user_id, Action.SEND)
        try:
            decode.check_text(content, "content")
            decode.check_client_msg_id(client_msg_id)
        except ProtocolError as exc:
            raise errors.InvalidInput(exc.message) from None
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            if record.kind == "ai":
                raise errors.NotSupported("An ai conversation's messages go through send-message")
            keys = await open_keys(con, identity, record)
            me = (await public_users(con, [identity.user_id]))[identity.user_id]
            if client_msg_id is not None:
                first = await storage.find_by_client_msg_id(con, conversation_id, client_msg_id)
                if first is not None and first.sender_id != identity.user_id:
                    # Another member's key (it travels in their `message-added`): never
                    # answer with their message, never drop this one silently.
                    raise errors.Conflict("clientMsgId: already used in this conversation")
                if first is not None:
                    people = {identity.user_id: me}
                    message = _people_message(decode_message(keys, first), first, people)
                    return message, record.message_count, True
            # Never compressed: several people write here (README, "Compression").
            row = await append_message(
                con,
                keys,
                record,
                content,
                role=crypto.Role.USER,
                sender_id=identity.user_id,
                client_msg_id=client_msg_id,
                compress=False,
            )
            seq = row.seq
            await storage.mark_read(con, conversation_id, identity.user_id, seq)
            members = await storage.list_members(con, conversation_id)
        message = _people_message(
            decode_message(keys, row), row, {identity.user_id: me}, content=content
        )
        await self._announce_message(message, members, origin_sid)
        return message, seq, False

    async def _announce_message(
        self,
        message: PeopleMessage,
        members: Sequence[storage.MemberRecord],
        origin_sid: str | None,
    ) -> None:
        conversation_id = uuid.UUID(message.conversation_id)
        await self._broadcast.to_conversation(
            conversation_id,
            ServerEvent.MESSAGE_ADDED,
            MessageAdded(
                sequence=message.sequence,
                role=message.role,
                content=message.content or "",
                timestamp=message.timestamp,
                client_msg_id=message.client_msg_id or UNSET,
                conversation_id=message.conversation_id,
                id=message.id,
                sender_id=message.sender_id or UNSET,
                sender=message.sender or UNSET,
            ),
            skip_sid=origin_sid,
        )
        last = LastMessage(
            id=message.id,
            sequence=message.sequence,
            sender_id=message.sender_id,
            preview=(message.content or "")[:_PREVIEW],
            timestamp=message.timestamp,
        )
        for member in members:
            unread = 0 if str(member.user_id) == message.sender_id else max(
                0, message.sequence - member.last_read_seq
            )
            await self._broadcast.to_user(
                member.user_id,
                ServerEvent.CONVERSATION_UPDATED,
                ConversationUpdated(
                    conversation_id=message.conversation_id,
                    last_message=last,
                    unread_count=unread,
                ),
            )


def _opened(
    keys: crypto.ConversationKeys | None,
    record: storage.ConversationRecord,
    purpose: Purpose,
    sealed: bytes | None,
) -> str | None:
    if sealed is None or keys is None:
        return None
    try:
        return open_field(keys, record.id, record.key_version, purpose, sealed)
    except crypto.InvalidToken:
        _LOG.warning("%s failed to decrypt conversation=%s", purpose.value, record.id)
        return None


def _last(keys: crypto.ConversationKeys | None, row: storage.MessageRecord) -> LastMessage:
    """The list's last message, with the timestamp its token carries (as every message
    and `conversation-updated` show it); the row's when the keys did not open."""
    decoded = decode_message(keys, row) if keys is not None else None
    return LastMessage(
        id=str(row.id),
        sequence=row.seq,
        sender_id=str(row.sender_id) if row.sender_id else None,
        preview=((decoded.content if decoded else None) or "")[:_PREVIEW],
        timestamp=decoded.timestamp if decoded else iso(row.created_at),
    )


def _people_message(
    decoded: DecodedMessage,
    row: storage.MessageRecord,
    people: dict[uuid.UUID, PublicUser],
    *,
    content: str | None = None,
) -> PeopleMessage:
    sender = people.get(row.sender_id) if row.sender_id else None
    return PeopleMessage(
        id=str(row.id),
        conversation_id=str(row.conversation_id),
        sequence=row.seq,
        sender_id=str(row.sender_id) if row.sender_id else None,
        sender=sender,
        role=decoded.role,
        content=content if content is not None else decoded.content,
        timestamp=decoded.timestamp,
        client_msg_id=row.client_msg_id,
        error=decoded.error,
    )
