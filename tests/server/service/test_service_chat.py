"""The chat service on its own: no socket, no HTTP, a recording broadcaster.

Real PostgreSQL, real crypto, the scripted model; what the service would have sent is
read from `RecordingBroadcaster`. These run in a fraction of the time of the
end-to-end suites and pin the service's rules for every transport at once.
"""

from __future__ import annotations

import uuid

import pytest
from pg import TempDatabase, connected
from service_harness import ChatHarness

from protocol.names import ErrorCode, ServerEvent
from protocol.socket_events import AiComplete, AiError, AiToken, MessageAdded
from server.service import exceptions as errors
from server.service.identity import Identity


async def _count(harness: ChatHarness, identity: Identity, conversation_id: uuid.UUID) -> int:
    record, _ = await harness.chat.open_for_join(identity, conversation_id)
    return record.message_count


async def test_a_send_stores_both_messages_and_streams_the_reply(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted:6:0")
    start = await harness.chat.begin_send(
        alice, conversation_id, "Plan three days in Lisbon", origin_sid="tab-1"
    )
    assert (start.user_sequence, start.sequence) == (1, 2)
    assert start.generation is not None and start.generation.task is not None
    outcome = await start.generation.task
    assert outcome.failure() is None
    assert (outcome.sequence, outcome.message_count, outcome.stored) == (2, 2, True)

    full = harness.broadcast.named(ServerEvent.AI_TOKEN)
    deltas = harness.broadcast.named(ServerEvent.AI_TOKEN, with_partial=False)
    assert all(isinstance(t, AiToken) for t in full + deltas)
    assert [t.token_index for t in full] == list(range(1, 7))  # type: ignore[attr-defined]
    assert [t.token for t in full] == [t.token for t in deltas]  # type: ignore[attr-defined]
    assert full[-1].partial == "".join(t.token for t in deltas)  # type: ignore[attr-defined]
    [complete] = harness.broadcast.named(ServerEvent.AI_COMPLETE)
    assert isinstance(complete, AiComplete) and complete.content == outcome.content
    # the other tabs learn of the user's message; the tab that sent it is skipped
    [added] = [r for r in harness.broadcast.sent if r.event == ServerEvent.MESSAGE_ADDED]
    assert isinstance(added.payload, MessageAdded) and added.sid == "tab-1"

    messages = await harness.chat.replay(alice, conversation_id, 0)
    assert [(m.sequence, m.role, m.content) for m in messages] == [
        (1, "user", "Plan three days in Lisbon"),
        (2, "assistant", outcome.content),
    ]
    viewport = await harness.chat.viewport(alice, conversation_id, from_seq=None, to_seq=None)
    assert viewport.integrity_valid and viewport.last_valid_sequence == 2


@pytest.mark.parametrize(
    ("content", "client_msg_id", "field"),
    [
        ("", None, "content"),
        ("   \n\t\u3000", None, "content"),
        ("a\ud800", None, "content"),
        ("hi", "m-1\n", "clientMsgId"),
    ],
)
async def test_what_cannot_be_a_message_is_refused_before_anything_is_stored(
    harness: ChatHarness, content: str, client_msg_id: str | None, field: str
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    with pytest.raises(errors.InvalidInput) as caught:
        await harness.chat.begin_send(alice, conversation_id, content, client_msg_id=client_msg_id)
    assert caught.value.code == ErrorCode.INVALID_PAYLOAD
    assert caught.value.message.startswith(field)
    assert await _count(harness, alice, conversation_id) == 0
    assert harness.broadcast.sent == []


async def test_an_edit_to_blank_text_is_refused_and_changes_nothing(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    start = await harness.chat.begin_send(alice, conversation_id, "first")
    assert start.generation is not None and start.generation.task is not None
    await start.generation.task
    for blank in ("", "  \n ", "\udfff b"):
        with pytest.raises(errors.InvalidInput) as caught:
            await harness.chat.edit(alice, conversation_id, 1, blank)
        assert caught.value.message.startswith("newContent")
    messages = await harness.chat.replay(alice, conversation_id, 0)
    assert (messages[0].content, len(messages)) == ("first", 2)


async def test_a_repeated_client_msg_id_is_one_message(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    first = await harness.chat.begin_send(alice, conversation_id, "once", client_msg_id="k-1")
    assert first.generation is not None and first.generation.task is not None
    await first.generation.task
    again = await harness.chat.begin_send(alice, conversation_id, "once", client_msg_id="k-1")
    assert again.duplicate and again.user_sequence == 1 and again.generation is None
    assert await _count(harness, alice, conversation_id) == 2


async def test_a_second_send_while_a_reply_runs_is_busy(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted:200:5")
    start = await harness.chat.begin_send(alice, conversation_id, "long one")
    with pytest.raises(errors.Busy):
        await harness.chat.begin_send(alice, conversation_id, "impatient")
    assert start.generation is not None and start.generation.task is not None
    await harness.tokens_streamed(start.generation, 2)
    assert await harness.chat.stop(alice, conversation_id)
    outcome = await start.generation.task
    assert outcome.stopped and outcome.stored and outcome.failure() is None
    [stored] = [m for m in await harness.chat.replay(alice, conversation_id, 1)]
    assert stored.stopped and stored.content == outcome.content


async def test_an_edit_discards_the_running_reply_and_regenerates(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted:200:5")
    start = await harness.chat.begin_send(alice, conversation_id, "before")
    assert start.generation is not None and start.generation.task is not None
    running = start.generation
    await harness.tokens_streamed(running, 2)
    result = await harness.chat.edit(alice, conversation_id, 1, "after")
    outcome = await running.task  # type: ignore[misc]
    failure = outcome.failure()
    assert isinstance(failure, errors.Cancelled) and failure.code == ErrorCode.CANCELLED
    assert not outcome.stored
    assert (result.edited_sequence, result.new_message_count) == (1, 1)
    assert result.regenerating is not None and result.regenerating.task is not None
    assert await harness.chat.stop(alice, conversation_id)
    await result.regenerating.task
    messages = await harness.chat.replay(alice, conversation_id, 0)
    assert messages[0].content == "after"
    assert [m.sequence for m in messages] in ([1], [1, 2])
    assert harness.broadcast.named(ServerEvent.CONVERSATION_TRUNCATED)


async def test_a_provider_failure_keeps_the_question_and_tells_the_room(
    harness: ChatHarness,
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted-fail:3:0")
    start = await harness.chat.begin_send(alice, conversation_id, "will fail")
    assert start.generation is not None and start.generation.task is not None
    outcome = await start.generation.task
    failure = outcome.failure()
    assert isinstance(failure, errors.GenerationFailed)
    assert failure.code.startswith("AI_") and failure.status == 502
    [error] = harness.broadcast.named(ServerEvent.AI_ERROR)
    assert isinstance(error, AiError) and error.code == failure.code and error.sequence == 2
    assert [m.content for m in await harness.chat.replay(alice, conversation_id, 0)] == [
        "will fail"
    ]


async def test_another_users_conversation_does_not_exist_for_them(harness: ChatHarness) -> None:
    alice, mallory = await harness.person(), await harness.person()
    conversation_id = await harness.conversation(alice)
    start = await harness.chat.begin_send(alice, conversation_id, "private")
    assert start.generation is not None and start.generation.task is not None
    await start.generation.task
    harness.broadcast.sent.clear()
    attempts = [
        harness.chat.open_for_join(mallory, conversation_id),
        harness.chat.begin_send(mallory, conversation_id, "let me in"),
        harness.chat.edit(mallory, conversation_id, 1, "mine now"),
        harness.chat.stop(mallory, conversation_id),
        harness.chat.delete(mallory, conversation_id),
        harness.chat.rename(mallory, conversation_id, "owned"),
        harness.chat.viewport(mallory, conversation_id, from_seq=None, to_seq=None),
        harness.chat.replay(mallory, conversation_id, 0),
    ]
    for attempt in attempts:
        with pytest.raises(errors.NotFound):
            await attempt
    assert harness.broadcast.sent == []
    messages = await harness.chat.replay(alice, conversation_id, 0)
    assert (messages[0].content, len(messages)) == ("private", 2)
    listed, _ = await harness.chat.list_conversations(mallory, limit=10, offset=0)
    assert listed == []


async def test_a_closing_service_refuses_new_replies(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    harness.chat.close()
    with pytest.raises(errors.Unavailable):
        await harness.chat.begin_send(alice, conversation_id, "too late")
    assert await _count(harness, alice, conversation_id) == 0


async def _leave_lock(
    server_db: TempDatabase, identity: Identity, conversation_id: uuid.UUID, age_s: float
) -> uuid.UUID:
    """A lock as a process that died mid-reply leaves it (its owner runs nowhere)."""
    owner = uuid.uuid4()
    async with connected(server_db.admin_dsn) as con:
        await con.execute(
            "INSERT INTO generation_locks"
            " (conversation_id, user_id, owner, sequence, started_at, expires_at)"
            " VALUES ($1, $2, $3, 2, now() - make_interval(secs => $4), now() + interval '30s')",
            conversation_id,
            identity.user_id,
            owner,
            age_s,
        )
    return owner


async def test_a_lock_left_by_a_dead_process_is_taken_over_by_the_next_send(
    harness: ChatHarness, server_db: TempDatabase
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    await _leave_lock(server_db, alice, conversation_id, age_s=5)
    start = await harness.chat.begin_send(alice, conversation_id, "after the crash")
    assert start.generation is not None and start.generation.task is not None
    outcome = await start.generation.task
    assert outcome.failure() is None and outcome.stored
    [lost] = harness.broadcast.named(ServerEvent.AI_ERROR)
    assert isinstance(lost, AiError)
    assert (lost.code, lost.sequence) == (ErrorCode.REPLY_LOST, 2)


async def test_a_lock_just_taken_is_not_mistaken_for_a_dead_one(
    harness: ChatHarness, server_db: TempDatabase
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    await _leave_lock(server_db, alice, conversation_id, age_s=0)
    with pytest.raises(errors.Busy):
        await harness.chat.begin_send(alice, conversation_id, "too soon to tell")
    assert harness.broadcast.named(ServerEvent.AI_ERROR) == []
    assert await _count(harness, alice, conversation_id) == 0
