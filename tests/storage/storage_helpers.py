"""Small builders shared by the storage tests (real rows, real database)."""

from __future__ import annotations

import hashlib
import os
import uuid

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from storage import (
    ConversationRecord,
    MessageRecord,
    UserRecord,
    create_conversation,
    get_conversation,
    insert_message,
    insert_user,
    set_head,
    user_tx,
)


def chain(prev: bytes | None, token: bytes) -> bytes:
    """The test's stand-in for the integrity chain: sha256(prev_link || token)."""
    return hashlib.sha256((prev or b"") + token).digest()


async def new_user(pool: asyncpg.Pool, email: str | None = None) -> UserRecord:
    """Register a user with random key material."""
    user_id = uuid.uuid4()
    async with user_tx(pool, user_id) as con:
        return await insert_user(
            con,
            user_id=user_id,
            email=email or f"{user_id.hex}@example.test",
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            kek_salt=os.urandom(16),
            wrapped_data_key=os.urandom(60),
        )


async def new_conversation(pool: asyncpg.Pool, user: UserRecord) -> ConversationRecord:
    """Create an empty conversation for ``user``."""
    async with user_tx(pool, user.id) as con:
        record = await create_conversation(
            con,
            conversation_id=uuid.uuid4(),
            user_id=user.id,
            sealed_title=b"a sealed title",
            model="gpt-4o",
            wrapped_key=os.urandom(60),
        )
    assert record is not None  # an ai conversation always is created
    return record


async def append(
    pool: asyncpg.Pool,
    user: UserRecord,
    conversation_id: uuid.UUID,
    token: bytes,
    *,
    role: int = 0,
    client_msg_id: str | None = None,
) -> MessageRecord:
    """Append one message the way the chat service does: lock, insert, move head."""
    async with user_tx(pool, user.id) as con:
        conversation = await get_conversation(con, conversation_id, for_update=True)
        assert conversation is not None
        seq = conversation.message_count + 1
        link = chain(conversation.merkle_root, token)
        message = await insert_message(
            con,
            conversation_id=conversation_id,
            user_id=user.id,
            seq=seq,
            role=role,
            token=token,
            link=link,
            client_msg_id=client_msg_id,
        )
        await set_head(con, conversation_id, message_count=seq, merkle_root=link)
        return message
