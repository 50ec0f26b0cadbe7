"""Appending one message to a conversation: its token, its chain link, its row, the head.

The one way every writer (a person's send, a user's send to the model, the model's
reply) adds a message, inside the caller's transaction, with the conversation's row
already locked FOR UPDATE (which is what serialises writers).
"""

from __future__ import annotations

import uuid

import crypto
import storage

__all__ = ["append_message"]


async def append_message(
    con: storage.Connection,
    keys: crypto.ConversationKeys,
    record: storage.ConversationRecord,
    content: str,
    *,
    role: crypto.Role,
    sender_id: uuid.UUID | None,
    client_msg_id: str | None = None,
    stopped: bool = False,
    compress: bool = True,
) -> storage.MessageRecord:
    """Store `content` as message `record.message_count + 1` and move the head to it.

    `record` is the locked row as read in this transaction. `compress=False` where more
    than one person writes (`crypto.pack`)."""
    sequence = record.message_count + 1
    token = crypto.pack(keys, record.id, sequence, role, content, compress=compress)
    link = crypto.next_link(keys.integrity, record.merkle_root, token)
    row = await storage.insert_message(
        con,
        conversation_id=record.id,
        user_id=record.user_id,
        seq=sequence,
        role=int(role),
        token=token,
        link=link,
        client_msg_id=client_msg_id,
        stopped=stopped,
        sender_id=sender_id,
    )
    await storage.set_head(con, record.id, message_count=sequence, merkle_root=link)
    return row
