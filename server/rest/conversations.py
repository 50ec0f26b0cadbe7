"""REST adapters for conversations (the seed's section 8), over the same chat service.

A REST send takes the same generation lock and streams to the sockets in the room too;
a REST edit truncates every open tab. [ext] The list and the read show every kind of
conversation (`ai`, `direct`, `group`) as `SharedChat` describes it; a send here is the
seed's AI send, so a direct or group conversation answers it 409 NOT_SUPPORTED (people's
messages go through `POST /api/messages`, `server.rest.people`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import msgspec
from aiohttp import web
from msgspec import UNSET

from protocol.rest import (
    ConversationDetail,
    ConversationList,
    ConversationSummary,
    CreateConversationRequest,
    CreatedConversation,
    DeleteResponse,
    EditRequest,
    EditResponse,
    Integrity,
    MessageOut,
    Pagination,
    RenameRequest,
    SendRequest,
    SendResponse,
    SseComplete,
    SseError,
    SseStart,
    SseToken,
)
from protocol.rest import Viewport as ViewportOut
from server.appkeys import CHAT, SHARED
from server.rest.http import authenticate, json_response, query_int, read_json
from server.rest.people import people_routes
from server.service import exceptions as errors
from server.service.chat import TRUNCATION_WARNING, ChatService, SendStart
from server.service.generations import GenerationOutcome
from server.service.identity import Identity
from server.service.stored_messages import DecodedMessage
from server.service.timefmt import iso
from storage import ConversationRecord

__all__ = ["conversation_id_param", "conversation_routes", "message_out"]

_HEARTBEAT_S = 15.0


def conversation_id_param(request: web.Request) -> uuid.UUID:
    """The `{id}` of the route; a malformed id is a missing conversation (404)."""
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise errors.NotFound() from None


def _summary(record: ConversationRecord) -> ConversationSummary:
    return ConversationSummary(
        id=str(record.id),
        title=record.title,
        model=record.model,
        message_count=record.message_count,
        created_at=iso(record.created_at),
        updated_at=iso(record.updated_at),
        merkle_root=record.merkle_root.hex() if record.merkle_root else None,
    )


def message_out(message: DecodedMessage) -> MessageOut:
    """A decoded message as the viewport and exports show it."""
    if message.error is not None or message.content is None:
        return MessageOut(
            sequence=message.sequence, is_decrypted=False, error=message.error or "unreadable"
        )
    return MessageOut(
        sequence=message.sequence,
        is_decrypted=True,
        role=message.role,
        content=message.content,
        timestamp=message.timestamp,
        content_hash=message.content_hash or "",
        stopped=True if message.stopped else UNSET,
    )


async def list_conversations(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    limit = query_int(request, "limit", 20, low=1, high=100) or 20
    offset = query_int(request, "offset", 0, low=0, high=2**31 - 1) or 0
    items, has_more = await request.app[SHARED].list_conversations(
        identity, limit=limit, offset=offset
    )
    return json_response(
        ConversationList(
            conversations=items,
            pagination=Pagination(limit=limit, offset=offset, has_more=has_more),
        )
    )


async def create_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = (
        await read_json(request, CreateConversationRequest)
        if request.can_read_body
        else CreateConversationRequest()
    )
    record = await request.app[CHAT].create_conversation(
        identity, title=body.title, model=body.model
    )
    return json_response(
        CreatedConversation(
            id=str(record.id),
            title=record.title,
            model=record.model,
            message_count=0,
            created_at=iso(record.created_at),
        ),
        status=201,
    )


async def get_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    conversation_id = conversation_id_param(request)
    from_seq = query_int(request, "from", None, low=1, high=2**31 - 1)
    to_seq = query_int(request, "to", None, low=1, high=2**31 - 1)
    if from_seq is not None and to_seq is not None and from_seq > to_seq:
        raise errors.InvalidInput("from: must not be greater than to")
    view = await request.app[CHAT].viewport(
        identity, conversation_id, from_seq=from_seq, to_seq=to_seq
    )
    # what the list shows of it: members, last message, the caller's unread count
    item = await request.app[SHARED].get(identity, conversation_id)
    record = view.conversation
    return json_response(
        ConversationDetail(
            id=str(record.id),
            title=record.title,
            model=record.model,
            message_count=record.message_count,
            merkle_root=record.merkle_root.hex() if record.merkle_root else None,
            integrity=Integrity(
                valid=view.integrity_valid, last_valid_sequence=view.last_valid_sequence
            ),
            viewport=ViewportOut(from_=view.from_seq, to=view.to_seq),
            messages=[message_out(m) for m in view.messages],
            kind=item.kind,
            participants=item.participants,
            last_message=item.last_message,
            unread_count=item.unread_count,
            description=item.description,
            category=item.category,
        )
    )


async def rename_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, RenameRequest)
    record = await request.app[CHAT].rename(identity, conversation_id_param(request), body.title)
    return json_response(_summary(record))


async def delete_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    deleted_at = await request.app[CHAT].delete(identity, conversation_id_param(request))
    return json_response(DeleteResponse(success=True, deleted_at=deleted_at))


async def edit_message(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, EditRequest)
    # the counter a socket's edits use: one budget whatever the transport
    result = await request.app[CHAT].edit(
        identity, conversation_id_param(request), body.sequence, body.new_content
    )
    return json_response(
        EditResponse(
            success=True,
            edited_sequence=result.edited_sequence,
            deleted_count=result.deleted_count,
            space_reclaimed_bytes=result.reclaimed_bytes,
            new_message_count=result.new_message_count,
            needs_regeneration_from=result.needs_regeneration_from,
            warning=TRUNCATION_WARNING,
        )
    )


async def _finished_reply(
    chat: ChatService, identity: Identity, conversation_id: uuid.UUID, start: SendStart
) -> GenerationOutcome:
    """The outcome of a send: awaited when running here, read back when already stored."""
    if start.generation is not None and start.generation.task is not None:
        return await asyncio.shield(start.generation.task)
    for message in await chat.replay(identity, conversation_id, start.user_sequence):
        if message.sequence == start.sequence and message.content is not None:
            return GenerationOutcome(
                sequence=start.sequence,
                content=message.content,
                message_count=start.message_count,
                stored=True,
                stopped=message.stopped,
            )
    raise errors.Busy("The reply to this message is still being generated")


async def send_message(request: web.Request) -> web.StreamResponse:
    identity = await authenticate(request)
    conversation_id = conversation_id_param(request)
    body = await read_json(request, SendRequest)
    # The seed's send asks the model. `begin_send` would store a person's message in a
    # direct or group conversation and start nothing, which this route's answers (a
    # reply's text, or its stream) cannot describe: refuse before anything is stored.
    if (await request.app[SHARED].get(identity, conversation_id)).kind != "ai":
        raise errors.NotSupported(
            "A direct or group conversation has no AI replies: send with POST /api/messages"
        )
    # the counter a socket's sends use (each send is a paid model call)
    chat = request.app[CHAT]
    start = await chat.begin_send(
        identity, conversation_id, body.content, client_msg_id=body.client_msg_id
    )
    if not body.stream:
        outcome = await _finished_reply(chat, identity, conversation_id, start)
        if (failure := outcome.failure()) is not None:
            raise failure
        return json_response(
            SendResponse(
                response=outcome.content,
                message_count=outcome.message_count,
                sequence=outcome.sequence,
                stopped=True if outcome.stopped else UNSET,
            )
        )
    return await _stream(request, chat, identity, conversation_id, start)


async def _stream(
    request: web.Request,
    chat: ChatService,
    identity: Identity,
    conversation_id: uuid.UUID,
    start: SendStart,
) -> web.StreamResponse:
    """Server-Sent Events; a client that goes away does not cancel the generation."""
    queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
    generation = start.generation
    if generation is not None and generation.task is not None:
        generation.listeners.append(lambda token, partial: queue.put_nowait((token, partial)))
        generation.task.add_done_callback(lambda _: queue.put_nowait(None))
    else:
        queue.put_nowait(None)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    writer = _SseWriter(response)
    await writer.send("start", SseStart(sequence=start.sequence, user_sequence=start.user_sequence))
    try:
        while (item := await _next(queue, writer)) is not None:
            await writer.send("token", SseToken(token=item[0], partial=item[1]))
        outcome = await _finished_reply(chat, identity, conversation_id, start)
        if (failure := outcome.failure()) is not None:
            await writer.send("error", SseError(message=failure.message, code=failure.code))
        else:
            await writer.send(
                "complete",
                SseComplete(
                    message_count=outcome.message_count,
                    response=outcome.content,
                    stopped=True if outcome.stopped else UNSET,
                ),
            )
    except errors.ServiceError as exc:
        await writer.send("error", SseError(message=exc.message, code=exc.code))
    finally:
        if generation is not None:
            generation.listeners.clear()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


async def _next(
    queue: asyncio.Queue[tuple[str, str] | None], writer: _SseWriter
) -> tuple[str, str] | None:
    """The next token, or None when the generation has ended; heartbeats on silence."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), timeout=_HEARTBEAT_S)
        except TimeoutError:
            await writer.comment("heartbeat")


class _SseWriter:
    """Writes events until the client goes away, then silently drops the rest."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self.gone = False

    async def _write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            await self._response.write(data)
        except (ConnectionError, RuntimeError):
            self.gone = True

    async def send(self, event: str, payload: msgspec.Struct) -> None:
        await self._write(
            b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"
        )

    async def comment(self, text: str) -> None:
        await self._write(b": " + text.encode() + b"\n\n")


def conversation_routes() -> list[web.RouteDef]:
    """The seed's routes, after the people routes [ext] (`server.rest.people`), which
    `server.app` registers through this list."""
    return [
        *people_routes(),
        web.get("/api/conversations", list_conversations),
        web.post("/api/conversations", create_conversation),
        web.get("/api/conversations/{id}", get_conversation),
        web.patch("/api/conversations/{id}", rename_conversation),
        web.delete("/api/conversations/{id}", delete_conversation),
        web.post("/api/conversations/{id}/messages", send_message),
        web.patch("/api/conversations/{id}/edit", edit_message),
    ]
