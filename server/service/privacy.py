"""Privacy operations: export, verify, rotate a conversation's key, erase for good, purge.

Composes storage and crypto like `ChatService`: every operation on a user's data takes
the caller's `Identity` and runs in `storage.user_tx`, so another user's conversation
is indistinguishable from a missing one. The one cross-user operation, `purge`, goes
through the narrow `purge_deleted_conversations` database function (see
migrations/002_purge.sql) and touches only conversations their owners already deleted.

Consistency. Writers to a conversation (send, edit, reply commit) lock its row FOR
UPDATE first. Exports and verification read the row FOR SHARE and the messages in the
same transaction, so they see one head and one key version. A key rotation holds the
row lock FOR UPDATE for its whole run and re-encrypts in bounded batches, so a send
issued meanwhile waits (it is never lost) and then writes under the new key; other
conversations are not held up. A rotation refuses (BUSY) while a reply is being
generated, because that reply would be committed under the old key.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

import crypto
import storage
from server.service import exceptions as errors
from server.service.accounts import check_password, current_user
from server.service.conversation_fields import Purpose, open_field
from server.service.event_limits import Action, EventLimiter
from server.service.generation_tracker import GenerationTracker
from server.service.generations import CancelMode
from server.service.identity import Identity
from server.service.keyring import (
    current_identity,
    new_wrapped_conversation_key,
    open_conversation_keys,
    open_keys,
)
from server.service.password_throttle import PasswordThrottle
from server.service.stored_messages import DecodedMessage, decode_message
from server.service.titles import seal_clear_titles, seal_title, with_title
from storage import privacy as privacy_sql

__all__ = [
    "AccountExport",
    "ConversationExport",
    "ErasedAccount",
    "PrivacyService",
    "RotationResult",
    "VerifyReport",
    "purge_loop",
]

_LOG = logging.getLogger(__name__)
_ALL_CONVERSATIONS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of recomputing a conversation's chain and decrypting every message."""

    message_count: int
    first_bad_sequence: int | None
    root_matches: bool
    undecryptable: tuple[int, ...]

    @property
    def valid(self) -> bool:
        return self.first_bad_sequence is None and self.root_matches and not self.undecryptable

    @property
    def last_valid_sequence(self) -> int:
        """The last message up to which the chain holds (as the viewport reports it)."""
        if self.first_bad_sequence is None:
            return self.message_count
        return self.first_bad_sequence - 1


@dataclass(frozen=True, slots=True)
class ConversationExport:
    conversation: storage.ConversationRecord
    messages: list[DecodedMessage]
    report: VerifyReport


@dataclass(frozen=True, slots=True)
class AccountExport:
    user: storage.UserRecord
    conversations: list[ConversationExport]


@dataclass(frozen=True, slots=True)
class ErasedAccount:
    """What was destroyed: the sessions whose sockets must go, the conversations."""

    session_ids: list[uuid.UUID]
    conversation_ids: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class RotationResult:
    key_version: int
    reencrypted: int


def _examine(
    keys: crypto.ConversationKeys,
    record: storage.ConversationRecord,
    rows: Sequence[storage.MessageRecord],
) -> tuple[list[DecodedMessage], VerifyReport]:
    """Decrypt every message and recompute the chain from the tokens alone."""
    messages = [decode_message(keys, row) for row in rows]
    previous: bytes | None = None
    first_bad: int | None = None
    for position, row in enumerate(rows, start=1):
        link = crypto.next_link(keys.integrity, previous, row.token)
        if first_bad is None and (row.seq != position or not hmac.compare_digest(link, row.link)):
            first_bad = position  # a wrong link there, or a message missing there
        previous = link
    if first_bad is None and len(rows) != record.message_count:
        first_bad = min(len(rows), record.message_count) + 1
    root_matches = len(rows) == record.message_count and previous == record.merkle_root
    return messages, VerifyReport(
        message_count=record.message_count,
        first_bad_sequence=first_bad,
        root_matches=root_matches,
        undecryptable=tuple(m.sequence for m in messages if m.error is not None),
    )


class _IntegrityBroken(Exception):
    def __init__(self, sequence: int) -> None:
        super().__init__(sequence)
        self.sequence = sequence


class _Rekeyer:
    """Re-encrypts a conversation batch by batch, checking the old chain as it goes."""

    def __init__(
        self, old: crypto.ConversationKeys, new: crypto.ConversationKeys, cid: uuid.UUID
    ) -> None:
        self._old, self._new, self._cid = old, new, cid
        self.count = 0
        self.old_head: bytes | None = None
        self.new_head: bytes | None = None

    def batch(self, rows: Sequence[storage.MessageRecord]) -> list[tuple[int, bytes, bytes]]:
        updates: list[tuple[int, bytes, bytes]] = []
        for row in rows:
            position = self.count + 1
            expected = crypto.next_link(self._old.integrity, self.old_head, row.token)
            if row.seq != position or not hmac.compare_digest(expected, row.link):
                raise _IntegrityBroken(position)
            try:
                if crypto.peek_header(row.token).sequence != row.seq:
                    raise _IntegrityBroken(position)
                token = crypto.reencrypt(self._old, self._new, self._cid, row.token)
            except crypto.InvalidToken:
                raise _IntegrityBroken(position) from None
            link = crypto.next_link(self._new.integrity, self.new_head, token)
            updates.append((row.seq, token, link))
            self.old_head, self.new_head, self.count = expected, link, position
        return updates


class PrivacyService:
    """Export, verify, rotate, hard-delete, delete an account, purge."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        tracker: GenerationTracker,
        *,
        limiter: EventLimiter | None = None,
        throttle: PasswordThrottle,
        hasher: crypto.PasswordHasher | None = None,
        batch_size: int = 500,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._pool = pool
        self._tracker = tracker
        # One instance's own counts unless the app shares them (Redis) across instances.
        self._throttle = throttle
        # The admin tool runs without one: its operator is not rate-limited.
        self._limiter = limiter
        self._hasher = hasher or crypto.PasswordHasher()
        self._batch = batch_size

    # ── reading everything ─────────────────────────────────────────────────

    async def _read(
        self, identity: Identity, conversation_id: uuid.UUID, *, audit: str | None
    ) -> ConversationExport:
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await seal_clear_titles(con, identity)
            record = await privacy_sql.get_conversation_for_share(con, conversation_id)
            if record is None:
                raise errors.NotFound()
            rows = await storage.list_messages(con, conversation_id)
            if audit is not None:
                await storage.append_audit(
                    con,
                    user_id=identity.user_id,
                    action=audit,
                    conversation_id=conversation_id,
                    details={"messages": len(rows)},
                )
            keys = await open_keys(con, identity, record)
        messages, report = await asyncio.to_thread(_examine, keys, record, rows)
        return ConversationExport(
            conversation=with_title(keys, record), messages=messages, report=report
        )

    async def export_conversation(
        self, identity: Identity, conversation_id: uuid.UUID
    ) -> ConversationExport:
        """One conversation, every message decrypted, with its chain verified."""
        await self._count(identity, Action.EXPORT)
        return await self._read(identity, conversation_id, audit="export")

    async def _count(self, identity: Identity, action: Action) -> None:
        if self._limiter is not None:
            await self._limiter.check(identity.user_id, action)

    async def export_account(self, identity: Identity) -> AccountExport:
        """The account and every live conversation (each read consistently on its own)."""
        await self._count(identity, Action.EXPORT)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            user = await current_user(con, identity)  # before the audit entry that names it
            await seal_clear_titles(con, identity)
            records = await storage.list_conversations(con, limit=_ALL_CONVERSATIONS, offset=0)
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="export_account",
                details={"conversations": len(records)},
            )
        exports: list[ConversationExport] = []
        for record in records:
            try:
                exports.append(await self._read(identity, record.id, audit=None))
            except errors.NotFound:
                continue  # deleted while the export ran
        return AccountExport(user=user, conversations=exports)

    async def verify(self, identity: Identity, conversation_id: uuid.UUID) -> VerifyReport:
        """Recompute the whole chain and decrypt every message (as costly as an export)."""
        await self._count(identity, Action.EXPORT)
        return (await self._read(identity, conversation_id, audit=None)).report

    # ── key rotation ────────────────────────────────────────────────────────

    async def rotate_key(self, identity: Identity, conversation_id: uuid.UUID) -> RotationResult:
        """A new random conversation key; every token re-encrypted, every link recomputed.

        Holds the conversation's row lock for the whole rotation (sends wait), and works
        in batches of `batch_size` messages with the crypto off the event loop. Refuses
        with Busy while a reply is generated, and with Conflict if the stored chain, a
        token or the title does not check out (rotating would launder the damage). The
        title is sealed again under the new key.
        """
        await self._count(identity, Action.ROTATE_KEY)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            # First: the new key is wrapped under the current data key, held FOR SHARE
            # until commit (lock order: see keyring). Connects on this session do not
            # wait for it (`touch_session` skips a locked row); a password change does.
            owner = await current_identity(con, identity, lock=True)
            record = await storage.get_conversation(con, conversation_id, for_update=True)
            if record is None:
                raise errors.NotFound()
            if record.wrapped_key is None:
                # A shared conversation's key is sealed to every member: a new one comes
                # with the key epochs of membership changes, not from one member.
                raise errors.NotSupported("Key rotation is for ai conversations")
            if await storage.get_generation(con, conversation_id) is not None:
                raise errors.Busy()
            # An expired lease is dropped so its holder can never extend it and commit
            # a reply under the old key.
            await storage.cancel_generation(con, conversation_id)
            old = open_conversation_keys(
                owner, conversation_id, record.wrapped_key, record.key_version
            )
            title = _title(old, record)
            version = record.key_version + 1
            wrapped = new_wrapped_conversation_key(owner, conversation_id, version)
            new = open_conversation_keys(owner, conversation_id, wrapped, version)
            rekeyer = _Rekeyer(old, new, conversation_id)
            after = 0
            try:
                while rows := await storage.list_messages(
                    con, conversation_id, from_seq=after + 1, limit=self._batch
                ):
                    updates = await asyncio.to_thread(rekeyer.batch, rows)
                    await privacy_sql.replace_tokens(con, conversation_id, updates)
                    after = rows[-1].seq
            except _IntegrityBroken as broken:
                raise _integrity_conflict(broken.sequence) from None
            if rekeyer.count != record.message_count or rekeyer.old_head != record.merkle_root:
                raise _integrity_conflict(min(rekeyer.count, record.message_count) + 1)
            await privacy_sql.set_conversation_key(
                con,
                conversation_id,
                wrapped_key=wrapped,
                key_version=version,
                merkle_root=rekeyer.new_head,
                sealed_title=seal_title(new, conversation_id, version, title),
            )
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="rotate_key",
                conversation_id=conversation_id,
                details={"keyVersion": version, "reencrypted": rekeyer.count},
            )
        return RotationResult(key_version=version, reencrypted=rekeyer.count)

    # ── erasure ─────────────────────────────────────────────────────────────

    async def hard_delete(self, identity: Identity, conversation_id: uuid.UUID) -> datetime:
        """Destroy a conversation (live or soft-deleted): its key is zeroed, then its rows.

        Any running reply is cancelled in the same transaction (it can never commit) and
        then told to stop on whatever instance it runs. The audit entry holds no content.
        """
        async with storage.user_tx(self._pool, identity.user_id) as con:
            record = await storage.get_conversation(con, conversation_id)
            live = record is not None
            if record is not None and record.kind != "ai":
                # Everyone's messages are in it: erasing it for all is not one member's
                # call (an admin's soft delete ends a group, and the purge erases it).
                raise errors.NotSupported("Erasure is for ai conversations; leave it instead")
            await storage.cancel_generation(con, conversation_id)
            count = await storage.count_messages(con, conversation_id)
            if not await storage.hard_delete_conversation(con, conversation_id):
                raise errors.NotFound()
            await storage.append_audit(
                con,
                user_id=identity.user_id,
                action="hard_delete",
                conversation_id=conversation_id,
                details={"messages": count, "wasSoftDeleted": not live},
            )
        await self._tracker.cancel(conversation_id, CancelMode.DISCARD)
        return datetime.now(UTC)

    async def delete_account(
        self, identity: Identity, password: str, *, ip: str | None = None
    ) -> ErasedAccount:
        """Check the password, then destroy the account and everything it owns.

        Every key is overwritten first (`erase_user_keys`), then the user row is deleted
        and conversations, messages, sessions, leases and the account's audit entries
        go with it by cascade. One anonymous entry (no user id, no address) records
        that an account was erased and how much. Running replies are told to stop; the
        caller disconnects the returned sessions' sockets.
        """
        async with storage.user_tx(self._pool, identity.user_id) as con:
            user = await current_user(con, identity)
        await check_password(
            self._hasher, self._throttle, user, password, field="password", ip=ip
        )
        async with storage.user_tx(self._pool, identity.user_id) as con:
            # The account row first, as every writer of keys locks (see `keyring`): a
            # password change running now finishes before, or waits and finds no user.
            if await storage.get_user(con, identity.user_id, for_update=True) is None:
                raise errors.Unauthorized("Authentication failed: user not found")
            # Other people's conversations stay theirs: the shared ones this account
            # created pass to another member before anything is erased.
            await privacy_sql.hand_over_conversations(con)
            conversation_ids = await privacy_sql.list_conversation_ids(con)
            generating = await privacy_sql.list_generating_conversations(con)
            session_ids = await privacy_sql.erase_user_keys(con, identity.user_id)
            if not await storage.delete_user(con, identity.user_id):
                raise errors.Unauthorized("Authentication failed: user not found")
            await storage.append_audit(
                con,
                user_id=None,
                action="account_deleted",
                details={"conversations": len(conversation_ids), "sessions": len(session_ids)},
            )
        for conversation_id in generating:
            await self._tracker.cancel(conversation_id, CancelMode.DISCARD)
        return ErasedAccount(session_ids=session_ids, conversation_ids=conversation_ids)

    async def purge(self, retention: timedelta, *, now: datetime | None = None) -> int:
        """Hard-delete every user's conversations soft-deleted more than `retention` ago.

        Works in transactions of at most `batch_size` conversations; returns how many
        were destroyed. Safe to run on several instances at once (rows locked by one
        are skipped by the others).
        """
        cutoff = (now or datetime.now(UTC)) - retention
        total = 0
        while True:
            async with storage.anonymous_tx(self._pool) as con:
                purged = await privacy_sql.purge_deleted_conversations(con, cutoff, self._batch)
            total += purged
            if purged < self._batch:
                return total


def _title(keys: crypto.ConversationKeys, record: storage.ConversationRecord) -> str | None:
    """The clear title of a row about to be re-keyed; Conflict when it does not open."""
    if record.sealed_title is None:
        return record.title  # none, or version 2's clear title: sealed from now on
    try:
        return open_field(keys, record.id, record.key_version, Purpose.TITLE, record.sealed_title)
    except crypto.InvalidToken:
        raise errors.Conflict(
            "The title does not decrypt; the key was not rotated (rename the conversation)"
        ) from None


def _integrity_conflict(sequence: int) -> errors.Conflict:
    return errors.Conflict(
        f"Integrity check failed at message {sequence}; the key was not rotated "
        "(verify the conversation for details)"
    )


async def purge_loop(service: PrivacyService, interval_s: float, retention: timedelta) -> None:
    """Purge now and then every `interval_s` seconds; failures are logged, the loop goes on."""
    while True:
        try:
            purged = await service.purge(retention)
            if purged:
                _LOG.info("purged %d soft-deleted conversations", purged)
        except storage.StorageError as exc:
            _LOG.warning("purge failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
