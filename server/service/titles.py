"""Conversation titles: sealed when written, opened for each reader, and the clear titles
left by schema version 2 sealed in place.

Storage hands out rows with `sealed_title` (and, until it is sealed, a version-2 row's
clear `title`); everything above the service sees `ConversationRecord.title` as the
clear title, as before. SQL has no keys, so the version-3 migration could not seal the
titles already stored: `seal_clear_titles` does, per user, wherever the service first
holds that user's data key (login, and every list or read of conversations).

Opening costs a key unwrap, two HKDFs and one AES-GCM open per titled row: about 19 us
on this machine (2026-12), so 0.4 ms for a default page of 20 and 2 ms for the largest
page of 100, inside the list's transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import crypto
import storage
from server.service.conversation_fields import Purpose, open_field, seal_field
from server.service.identity import Identity
from server.service.keyring import open_keys

__all__ = ["opened_title", "seal_clear_titles", "seal_title", "titled", "with_title"]

_LOG = logging.getLogger(__name__)


def seal_title(
    keys: crypto.ConversationKeys, conversation_id: uuid.UUID, key_version: int, title: str | None
) -> bytes | None:
    """A title as stored: sealed under the conversation's keys; None stays None."""
    if title is None:
        return None
    return seal_field(keys, conversation_id, key_version, Purpose.TITLE, title)


def opened_title(keys: crypto.ConversationKeys, record: storage.ConversationRecord) -> str | None:
    """The clear title of a stored row. One that does not open is logged and shown as
    no title, as an undecryptable message is shown as unreadable: one damaged row must
    not take the whole list down."""
    if record.sealed_title is None:
        return record.title  # no title, or a version-2 clear title not sealed yet
    try:
        return open_field(keys, record.id, record.key_version, Purpose.TITLE, record.sealed_title)
    except crypto.InvalidToken:
        _LOG.warning("title failed to decrypt conversation=%s", record.id)
        return None


def with_title(
    keys: crypto.ConversationKeys, record: storage.ConversationRecord
) -> storage.ConversationRecord:
    """The row as the service hands it on: `title` is the clear title."""
    return dataclasses.replace(record, title=opened_title(keys, record))


async def titled(
    con: storage.Connection, identity: Identity, record: storage.ConversationRecord
) -> storage.ConversationRecord:
    """`with_title` for a row whose keys the caller has not opened (a list)."""
    if record.sealed_title is None:
        return record
    try:
        keys = await open_keys(con, identity, record)
    except crypto.KeyUnwrapError:
        _LOG.warning("conversation key failed to unwrap conversation=%s", record.id)
        return dataclasses.replace(record, title=None)
    return with_title(keys, record)


async def seal_clear_titles(con: storage.Connection, identity: Identity) -> int:
    """Seal the caller's version-2 clear titles and blank them; returns how many.

    Call it first in a transaction (it locks the rows it seals; rows someone else holds
    are skipped and sealed at a later call, so it never waits). Costs one index lookup
    once a user has none left. A row whose key does not open under the caller's data key
    is left as it is, and logged: its title stays readable rather than lost.
    """
    sealed: list[tuple[uuid.UUID, bytes]] = []
    for record in await storage.list_clear_titles(con):
        try:
            keys = await open_keys(con, identity, record)
        except crypto.KeyUnwrapError:
            _LOG.warning("clear title left unsealed: key failed conversation=%s", record.id)
            continue
        title = seal_title(keys, record.id, record.key_version, record.title)
        if title is not None:
            sealed.append((record.id, title))
    return await storage.seal_clear_titles(con, sealed)
