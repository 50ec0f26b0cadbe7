"""Row-level security of shared conversations (schema version 4), from raw SQL on the
application role's own connection: membership decides what a user sees of a
conversation, its messages, its members and its generation lock; the account row stays
its owner's alone; profiles are the only thing of a person others read; only admins
add members, each member changes only their own row, and only the creator deletes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from pg import TempDatabase
from storage_helpers import new_conversation, new_user

from storage import (
    NewMember,
    UserRecord,
    acquire_generation,
    create_conversation,
    insert_message,
    insert_profile,
    set_head,
    set_key_pair,
    user_tx,
)

# The database refuses: by a policy, or by the guard on who a conversation may have.
ROW_SECURITY = "row-level security|not a member this conversation can have"


@dataclass(frozen=True)
class Room:
    """A group: `creator` (admin) and `member`; `outsider` belongs to none of it and owns
    an `ai` conversation of their own (`outsiders_own`)."""

    creator: UserRecord
    member: UserRecord
    outsider: UserRecord
    group_id: uuid.UUID
    outsiders_own: uuid.UUID
    secrets: Mapping[uuid.UUID, tuple[bytes, ...]]


async def _person(pool: asyncpg.Pool, name: str) -> tuple[UserRecord, bytes]:
    user = await new_user(pool)
    wrapped_private = os.urandom(72)
    async with user_tx(pool, user.id) as con:
        await insert_profile(con, user.id, name=name, image=None)
        await set_key_pair(
            con, user.id, public_key=os.urandom(32), wrapped_private_key=wrapped_private
        )
    return user, wrapped_private


@pytest_asyncio.fixture(scope="module")
async def room(pool: asyncpg.Pool) -> Room:
    (creator, c_key), (member, m_key), (outsider, o_key) = [
        await _person(pool, name) for name in ("Creator", "Member", "Outsider")
    ]
    group_id = uuid.uuid4()
    async with user_tx(pool, creator.id) as con:
        record = await create_conversation(
            con,
            conversation_id=group_id,
            user_id=creator.id,
            sealed_title=b"sealed name",
            model="m",
            wrapped_key=None,
            kind="group",
            category="GENERAL",
            members=[
                NewMember(user_id=creator.id, role="admin", sealed_key=os.urandom(80)),
                NewMember(user_id=member.id, role="member", sealed_key=os.urandom(80)),
            ],
        )
        assert record is not None
    # Both write; rows carry the creator (foreign key) and their sender.
    for seq, author in enumerate((creator, member, creator), start=1):
        link = os.urandom(32)
        async with user_tx(pool, author.id) as con:
            await insert_message(
                con,
                conversation_id=group_id,
                user_id=creator.id,
                seq=seq,
                role=0,
                token=os.urandom(40),
                link=link,
                sender_id=author.id,
            )
            # The head follows the last message (the update guard checks it).
            await set_head(con, group_id, message_count=seq, merkle_root=link)
    async with user_tx(pool, creator.id) as con:
        assert await acquire_generation(
            con,
            conversation_id=group_id,
            user_id=creator.id,
            owner=uuid.uuid4(),
            sequence=4,
            ttl_seconds=600,
        )
    outsiders_own = (await new_conversation(pool, outsider)).id
    secrets = {
        user.id: (
            user.email.encode(),
            user.password_hash.encode(),
            user.wrapped_data_key,
            wrapped_private,
        )
        for user, wrapped_private in ((creator, c_key), (member, m_key), (outsider, o_key))
    }
    return Room(creator, member, outsider, group_id, outsiders_own, secrets)


@pytest_asyncio.fixture
async def raw(database: TempDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A bare connection as the application role, outside any pool or helper."""
    con = await asyncpg.connect(database.app_dsn)
    yield con
    await con.close()


async def act_as(con: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await con.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))


@asynccontextmanager
async def rolled_back(con: asyncpg.Connection, user_id: uuid.UUID) -> AsyncIterator[None]:
    """A transaction acting as `user_id` whose changes never reach the shared fixture."""
    tx = con.transaction()
    await tx.start()
    try:
        await act_as(con, user_id)
        yield
    finally:
        await tx.rollback()


async def _visible(raw: asyncpg.Connection, group_id: uuid.UUID) -> dict[str, int]:
    return {
        "conversations": await raw.fetchval(
            "SELECT count(*) FROM conversations WHERE id = $1", group_id
        ),
        "messages": await raw.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", group_id
        ),
        "conversation_members": await raw.fetchval(
            "SELECT count(*) FROM conversation_members WHERE conversation_id = $1", group_id
        ),
        "generation_locks": await raw.fetchval(
            "SELECT count(*) FROM generation_locks WHERE conversation_id = $1", group_id
        ),
    }


async def test_a_non_member_sees_and_changes_nothing_of_the_conversation(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    async with raw.transaction():
        await act_as(raw, room.outsider.id)
        assert await _visible(raw, room.group_id) == {
            "conversations": 0,
            "messages": 0,
            "conversation_members": 0,
            "generation_locks": 0,
        }
        # Nothing of the group by any other road either.
        assert await raw.fetchval(
            "SELECT count(*) FROM messages WHERE user_id = $1 OR sender_id = $2",
            room.creator.id,
            room.member.id,
        ) == 0
        assert {r[0] for r in await raw.fetch("SELECT id FROM conversations")} == {
            room.outsiders_own
        }
        for statement in (
            "UPDATE conversations SET updated_at = now() WHERE id = $1",
            "UPDATE messages SET token = token WHERE conversation_id = $1",
            "UPDATE conversation_members SET last_read_seq = 0 WHERE conversation_id = $1",
            "UPDATE generation_locks SET expires_at = now() WHERE conversation_id = $1",
        ):
            assert await raw.execute(statement, room.group_id) == "UPDATE 0", statement
        for table, column in (
            ("messages", "conversation_id"),
            ("generation_locks", "conversation_id"),
            ("conversations", "id"),
        ):
            status = await raw.execute(f"DELETE FROM {table} WHERE {column} = $1", room.group_id)
            assert status == "DELETE 0", table
    # Control: the group is all there.
    assert await _visible(admin, room.group_id) == {
        "conversations": 1,
        "messages": 3,
        "conversation_members": 2,
        "generation_locks": 1,
    }


async def test_a_member_sees_the_group_its_members_messages_and_lock(
    raw: asyncpg.Connection, room: Room
) -> None:
    for who in (room.member, room.creator):
        async with raw.transaction():
            await act_as(raw, who.id)
            assert await _visible(raw, room.group_id) == {
                "conversations": 1,
                "messages": 3,
                "conversation_members": 2,
                "generation_locks": 1,
            }
            members = await raw.fetch(
                "SELECT user_id, role FROM conversation_members WHERE conversation_id = $1",
                room.group_id,
            )
            assert {(r["user_id"], r["role"]) for r in members} == {
                (room.creator.id, "admin"),
                (room.member.id, "member"),
            }
            senders = await raw.fetch(
                "SELECT sender_id FROM messages WHERE conversation_id = $1 ORDER BY seq",
                room.group_id,
            )
            assert [r[0] for r in senders] == [room.creator.id, room.member.id, room.creator.id]
            lock = await raw.fetchrow(
                "SELECT user_id FROM generation_locks WHERE conversation_id = $1", room.group_id
            )
            assert lock is not None and lock["user_id"] == room.creator.id
            # Not the outsider's conversation, though.
            assert await raw.fetchval(
                "SELECT count(*) FROM conversations WHERE id = $1", room.outsiders_own
            ) == 0


async def test_a_member_reads_only_their_own_account_row_and_others_profiles(
    raw: asyncpg.Connection, room: Room
) -> None:
    async with raw.transaction():
        await act_as(raw, room.member.id)
        accounts = await raw.fetch(
            "SELECT id, email, password_hash, wrapped_data_key, wrapped_private_key FROM users"
        )
        assert [r["id"] for r in accounts] == [room.member.id]
        assert accounts[0]["wrapped_private_key"] == room.secrets[room.member.id][3]
        assert await raw.fetchval(
            "SELECT count(*) FROM users WHERE id = ANY($1::uuid[])",
            [room.creator.id, room.outsider.id],
        ) == 0
        assert await raw.execute(
            "UPDATE users SET updated_at = now() WHERE id = $1", room.creator.id
        ) == "UPDATE 0"

        profiles = await raw.fetch(
            "SELECT * FROM profiles WHERE user_id = ANY($1::uuid[])",
            [room.creator.id, room.outsider.id],
        )
        assert {r["user_id"]: r["name"] for r in profiles} == {
            room.creator.id: "Creator",
            room.outsider.id: "Outsider",
        }
        assert set(profiles[0].keys()) <= {"user_id", "name", "image", "public_key", "updated_at"}
        assert all(len(r["public_key"]) == 32 for r in profiles)
        # No secret of anyone else's account anywhere in what a profile shows.
        shown = b"".join(
            value if isinstance(value, bytes) else str(value).encode()
            for r in profiles
            for value in r.values()
        )
        for user_id in (room.creator.id, room.outsider.id):
            for secret in room.secrets[user_id]:
                assert secret not in shown
        # Profiles are changed by their owner only.
        assert await raw.execute(
            "UPDATE profiles SET name = 'hijacked' WHERE user_id = $1", room.creator.id
        ) == "UPDATE 0"


async def test_a_member_who_is_not_admin_cannot_add_promote_or_touch_others(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    newcomer = room.outsider.id
    async with raw.transaction():
        await act_as(raw, room.member.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=ROW_SECURITY):
            await raw.execute(
                "INSERT INTO conversation_members (conversation_id, user_id, role)"
                " VALUES ($1, $2, 'member')",
                room.group_id,
                newcomer,
            )
    async with rolled_back(raw, room.member.id):
        # Another member's row: their receipts, their sealed key.
        for assignment in ("last_read_seq = 3", "sealed_key = '\\x00'::bytea"):
            status = await raw.execute(
                f"UPDATE conversation_members SET {assignment}"
                " WHERE conversation_id = $1 AND user_id = $2",
                room.group_id,
                room.creator.id,
            )
            assert status == "UPDATE 0", assignment
        # Their own receipts they may move.
        assert await raw.execute(
            "UPDATE conversation_members SET last_read_seq = 2"
            " WHERE conversation_id = $1 AND user_id = $2",
            room.group_id,
            room.member.id,
        ) == "UPDATE 1"
        # The creator may delete the conversation; a member may not.
        assert await raw.execute(
            "DELETE FROM conversations WHERE id = $1", room.group_id
        ) == "DELETE 0"
    for statement in (
        "UPDATE conversation_members SET role = 'admin' WHERE conversation_id = $1",
        "UPDATE conversation_members SET user_id = user_id WHERE conversation_id = $1",
        "DELETE FROM conversation_members WHERE conversation_id = $1",
    ):
        async with raw.transaction():
            await act_as(raw, room.member.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await raw.execute(statement, room.group_id)
    members = await admin.fetch(
        "SELECT user_id, role, last_read_seq FROM conversation_members"
        " WHERE conversation_id = $1",
        room.group_id,
    )
    assert {r["user_id"]: r["role"] for r in members} == {
        room.creator.id: "admin",
        room.member.id: "member",
    }
    assert {r["user_id"]: r["last_read_seq"] for r in members}[room.creator.id] == 0


async def test_only_the_creator_deletes_the_conversation(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    """And only once its admins ended it: a live group is everyone's."""
    async with rolled_back(raw, room.creator.id):
        assert await raw.execute(
            "DELETE FROM conversations WHERE id = $1", room.group_id
        ) == "DELETE 0"
        await raw.execute(
            "UPDATE conversations SET deleted_at = now() WHERE id = $1", room.group_id
        )
        assert await raw.execute(
            "DELETE FROM conversations WHERE id = $1", room.group_id
        ) == "DELETE 1"
    assert await admin.fetchval(
        "SELECT count(*) FROM conversations WHERE id = $1", room.group_id
    ) == 1


@pytest.mark.parametrize("who", ["outsider", "creator", "member", "nobody"])
async def test_nobody_adds_a_member_to_a_conversation_they_do_not_belong_to(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room, who: str
) -> None:
    """The outsider into the group (as admin or member), and anyone into the outsider's
    own conversation, even an admin of another one."""
    targets = {
        "outsider": [
            (room.group_id, room.outsider.id, "admin"),
            (room.group_id, room.outsider.id, "member"),
        ],
        "creator": [(room.outsiders_own, room.creator.id, "admin")],
        "member": [(room.outsiders_own, room.member.id, "member")],
        "nobody": [
            (room.group_id, room.outsider.id, "member"),
            (room.outsiders_own, room.creator.id, "admin"),
        ],
    }[who]
    for conversation_id, user_id, role in targets:
        async with raw.transaction():
            if who != "nobody":
                await act_as(raw, getattr(room, who).id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=ROW_SECURITY):
                await raw.execute(
                    "INSERT INTO conversation_members"
                    " (conversation_id, user_id, role, sealed_key) VALUES ($1, $2, $3, '\\x01')",
                    conversation_id,
                    user_id,
                    role,
                )
    counts = await admin.fetch(
        "SELECT conversation_id, count(*) FROM conversation_members"
        " WHERE conversation_id = ANY($1::uuid[]) GROUP BY 1",
        [room.group_id, room.outsiders_own],
    )
    assert {r[0]: r[1] for r in counts} == {room.group_id: 2, room.outsiders_own: 1}


async def test_the_admin_adds_members_and_the_lock_is_every_members(
    raw: asyncpg.Connection, room: Room
) -> None:
    """The positive side of the policies above, in a transaction rolled back: the admin
    adds someone, who then sees the group, its messages and its generation lock."""
    async with rolled_back(raw, room.creator.id):
        assert await raw.fetchval("SELECT may_add_members($1)", room.group_id) is True
        await raw.execute(
            "INSERT INTO conversation_members (conversation_id, user_id, role, sealed_key)"
            " VALUES ($1, $2, 'member', '\\x01')",
            room.group_id,
            room.outsider.id,
        )
        await act_as(raw, room.outsider.id)
        assert await _visible(raw, room.group_id) == {
            "conversations": 1,
            "messages": 3,
            "conversation_members": 3,
            "generation_locks": 1,
        }


async def test_membership_functions_answer_nothing_without_an_identity(
    raw: asyncpg.Connection, room: Room
) -> None:
    for identity in (None, ""):
        async with raw.transaction():
            if identity is not None:
                await raw.execute("SELECT set_config('app.current_user_id', $1, true)", identity)
            assert await raw.fetch("SELECT * FROM member_conversation_ids()") == []
            assert await raw.fetchval("SELECT may_add_members($1)", room.group_id) is False
            assert await raw.fetchval(
                "SELECT find_user_id_by_email($1)", room.creator.email
            ) is None
            assert await _visible(raw, room.group_id) == dict.fromkeys(
                ("conversations", "messages", "conversation_members", "generation_locks"), 0
            )
            assert await raw.fetchval("SELECT count(*) FROM profiles") == 0
    # Controls: with an identity, each answers for that identity only.
    async with raw.transaction():
        await act_as(raw, room.member.id)
        assert {r[0] for r in await raw.fetch("SELECT * FROM member_conversation_ids()")} == {
            room.group_id
        }
        assert await raw.fetchval("SELECT may_add_members($1)", room.group_id) is False
        assert await raw.fetchval(
            "SELECT find_user_id_by_email($1)", room.creator.email.upper()
        ) == room.creator.id


async def test_a_member_moves_the_head_only_onto_the_message_they_appended(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    """Row-level security cannot tell columns apart: the update guard does. A member may
    not reset the count, point the head elsewhere, touch the key or title columns, or
    date the conversation into the future."""
    before = await admin.fetchrow(
        "SELECT message_count, merkle_root, key_version, updated_at FROM conversations"
        " WHERE id = $1",
        room.group_id,
    )
    assert before is not None
    for assignment in (
        "message_count = 0, merkle_root = NULL",
        f"message_count = {before['message_count'] + 1}, merkle_root = '\\x01'",
        "merkle_root = '\\x02'",
        "key_version = 7",
        "key_version = -1",
        "wrapped_key = '\\x01'",
        "updated_at = '3000-01-01'",
    ):
        async with raw.transaction():
            await act_as(raw, room.member.id)
            with pytest.raises(asyncpg.PostgresError):
                await raw.execute(
                    f"UPDATE conversations SET {assignment} WHERE id = $1", room.group_id
                )
    # A clear title (what the service seals at its owner's next login) has no place in
    # a shared conversation: the guard and a check constraint both say so.
    async with raw.transaction():
        await act_as(raw, room.member.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="title columns are fixed"):
            await raw.execute("UPDATE conversations SET title = 'x' WHERE id = $1", room.group_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await admin.execute(
            "INSERT INTO conversations (id, user_id, model, kind, title)"
            " VALUES ($1, $2, 'm', 'group', 'x')",
            uuid.uuid4(),
            room.creator.id,
        )
    # The real move: a message appended, then the head onto it, by a plain member.
    async with rolled_back(raw, room.member.id):
        count = before["message_count"] + 1
        await raw.execute(
            "INSERT INTO messages (conversation_id, user_id, seq, role, token, link, sender_id)"
            " VALUES ($1, $2, $3, 0, '\\x00', '\\x0a', $4)",
            room.group_id,
            room.creator.id,
            count,
            room.member.id,
        )
        assert await raw.execute(
            "UPDATE conversations SET message_count = $2, merkle_root = '\\x0a',"
            " updated_at = now() WHERE id = $1",
            room.group_id,
            count,
        ) == "UPDATE 1"
    after = await admin.fetchrow(
        "SELECT message_count, merkle_root, key_version, updated_at FROM conversations"
        " WHERE id = $1",
        room.group_id,
    )
    assert after == before


async def test_a_member_appends_messages_only_as_themselves(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    """Not in another member's name, not as the model, not authorless."""
    count = await admin.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1", room.group_id
    )
    for sender, role in (
        (room.creator.id, 0),
        (None, 0),
        (None, 1),
        (room.member.id, 1),
    ):
        async with raw.transaction():
            await act_as(raw, room.member.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await raw.execute(
                    "INSERT INTO messages"
                    " (conversation_id, user_id, seq, role, token, link, sender_id)"
                    " VALUES ($1, $2, 99, $3, '\\x00', '\\x00', $4)",
                    room.group_id,
                    room.creator.id,
                    role,
                    sender,
                )
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", room.group_id
        )
        == count
    )


async def test_a_conversation_has_its_creator_and_only_the_people_it_may_have(
    raw: asyncpg.Connection, admin: asyncpg.Connection, room: Room
) -> None:
    """Who may be put in a new conversation, whoever creates it: a direct pair names its
    creator, holds its two people and nobody else; a group's creator is its admin and
    nobody else is; an ai conversation holds its owner alone."""
    outsider, creator, member = room.outsider.id, room.creator.id, room.member.id

    def pair(a: uuid.UUID, b: uuid.UUID) -> str:
        return ":".join(sorted((str(a), str(b))))

    async def create(kind: str, direct_pair: str | None, members: list[tuple[uuid.UUID, str]]):
        conversation_id = uuid.uuid4()
        await raw.execute(
            "INSERT INTO conversations (id, user_id, model, kind, direct_pair, wrapped_key)"
            " VALUES ($1, $2, 'm', $3, $4, $5)",
            conversation_id,
            outsider,
            kind,
            direct_pair,
            b"\x01" if kind == "ai" else None,
        )
        if members:
            await raw.execute(
                "INSERT INTO conversation_members (conversation_id, user_id, role)"
                " SELECT $1, u, r FROM unnest($2::uuid[], $3::text[]) AS x(u, r)",
                conversation_id,
                [m[0] for m in members],
                [m[1] for m in members],
            )

    refused: list[tuple[str, str | None, list[tuple[uuid.UUID, str]]]] = [
        ("direct", pair(creator, member), [(creator, "member"), (member, "member")]),
        ("direct", pair(outsider, member), [(outsider, "member"), (creator, "member")]),
        ("direct", pair(outsider, member), [(outsider, "admin"), (member, "member")]),
        ("direct", pair(outsider, member), [(member, "member")]),
        ("direct", pair(outsider, member), [(outsider, "member")]),
        ("direct", pair(outsider, member), []),
        ("group", None, [(outsider, "admin"), (member, "admin")]),
        ("group", None, [(outsider, "member"), (member, "member")]),
        ("group", None, [(member, "member")]),
        ("ai", None, [(outsider, "admin"), (member, "member")]),
    ]
    for kind, direct_pair, members in refused:
        with pytest.raises(asyncpg.PostgresError):
            async with raw.transaction():
                await act_as(raw, outsider)
                await create(kind, direct_pair, members)
    # What is allowed, for the record that the refusals above are not blanket ones.
    async with rolled_back(raw, outsider):
        await create("direct", pair(outsider, member), [(outsider, "member"), (member, "member")])
        await create("group", None, [(outsider, "admin"), (member, "member")])
        await raw.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM conversations WHERE user_id = $1 AND kind <> 'ai'", outsider
        )
        == 0
    )
    # An ai conversation's owner adds nobody to it.
    async with raw.transaction():
        await act_as(raw, outsider)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await raw.execute(
                "INSERT INTO conversation_members (conversation_id, user_id, role)"
                " VALUES ($1, $2, 'member')",
                room.outsiders_own,
                member,
            )


async def test_a_new_members_adder_time_and_receipts_are_the_databases(
    raw: asyncpg.Connection, room: Room
) -> None:
    async with rolled_back(raw, room.creator.id):
        await raw.execute(
            "INSERT INTO conversation_members"
            " (conversation_id, user_id, role, added_by, joined_at, last_read_seq,"
            " last_delivered_seq) VALUES ($1, $2, 'member', $3, '1970-01-01', 99, 99)",
            room.group_id,
            room.outsider.id,
            room.member.id,
        )
        row = await raw.fetchrow(
            "SELECT added_by, joined_at > now() - interval '1 minute' AS fresh,"
            " last_read_seq, last_delivered_seq FROM conversation_members"
            " WHERE conversation_id = $1 AND user_id = $2",
            room.group_id,
            room.outsider.id,
        )
        assert row is not None
        assert dict(row) == {
            "added_by": room.creator.id,
            "fresh": True,
            "last_read_seq": 0,
            "last_delivered_seq": 0,
        }
