"""REST adapters for people and shared conversations [ext] (seed 004's routes), over
`ProfileService` and `SharedChat`.

- `/api/profile` (GET, PATCH), `/api/users/{userId}`, `POST /api/users/lookup`;
- `POST /api/conversations/direct` (get-or-create: 201 created, 200 existing),
  `POST /api/conversations/group`, `POST /api/conversations/{id}/participants`;
- `GET /api/messages/{conversationId}`, `POST /api/messages` (people's messages; an
  `ai` conversation's go through `POST /api/conversations/{id}/messages`).

A malformed id in a path is a missing one (404), as for the seed's routes; a malformed
id in a body is bad input (400).
"""

from __future__ import annotations

import uuid

from aiohttp import web
from msgspec import UNSET

from protocol.rest import (
    AddParticipantRequest,
    ConversationResponse,
    DirectRequest,
    GroupRequest,
    LookupRequest,
    LookupResponse,
    MessagePage,
    MessagePagination,
    ParticipantAdded,
    PeopleMessageOut,
    PostMessageRequest,
    PostMessageResponse,
    ProfileUpdateRequest,
)
from protocol.shared import PublicUser
from server.appkeys import PROFILES, SHARED
from server.rest.http import authenticate, json_response, query_int, read_json
from server.service import exceptions as errors
from server.service.shared_chat import PeopleMessage

__all__ = ["people_routes"]

_INT32_MAX = 2**31 - 1
_NO_PERSON = "No such person"
_MESSAGES_LIMIT = 50


def _path_uuid(request: web.Request, name: str, missing: str | None = None) -> uuid.UUID:
    """A `{name}` of the route; a malformed id is a missing thing (404)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise (errors.NotFound(missing) if missing else errors.NotFound()) from None


def _message_out(message: PeopleMessage) -> PeopleMessageOut:
    return PeopleMessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        sequence=message.sequence,
        sender_id=message.sender_id,
        sender=message.sender,
        role=message.role,
        content=message.content,
        timestamp=message.timestamp,
        client_msg_id=message.client_msg_id,
        error=message.error if message.error is not None else UNSET,
    )


# ── profiles ────────────────────────────────────────────────────────────────


async def get_profile(request: web.Request) -> web.Response:
    """The caller's own `{id, name, image}`; an account without a profile row yet (one
    from before profiles that has not signed in since) shows only its id."""
    identity = await authenticate(request)
    try:
        user = await request.app[PROFILES].get(identity, identity.user_id)
    except errors.NotFound:
        user = PublicUser(id=str(identity.user_id), name=None, image=None)
    return json_response(user)


async def update_profile(request: web.Request) -> web.Response:
    """A field left out keeps its value; `null` clears it (one statement)."""
    identity = await authenticate(request)
    body = await read_json(request, ProfileUpdateRequest)
    user = await request.app[PROFILES].update(identity, name=body.name, image=body.image)
    return json_response(user)


async def get_user(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    user_id = _path_uuid(request, "userId", _NO_PERSON)
    return json_response(await request.app[PROFILES].get(identity, user_id))


async def lookup_user(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, LookupRequest)
    user = await request.app[PROFILES].find_by_email(identity, body.email)
    return json_response(LookupResponse(user=user))


# ── direct and group conversations ──────────────────────────────────────────


async def create_direct(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, DirectRequest)
    item, created = await request.app[SHARED].create_direct(identity, body.user_id)
    return json_response(ConversationResponse(conversation=item), status=201 if created else 200)


async def create_group(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, GroupRequest)
    item = await request.app[SHARED].create_group(
        identity,
        name=body.name,
        description=body.description,
        category=body.category,
        member_ids=body.member_ids,
    )
    return json_response(ConversationResponse(conversation=item), status=201)


async def add_participant(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    conversation_id = _path_uuid(request, "id")
    body = await read_json(request, AddParticipantRequest)
    added = await request.app[SHARED].add_member(identity, conversation_id, body.user_id)
    return json_response(
        ParticipantAdded(
            conversation_id=added.conversation_id,
            user_id=added.user_id,
            role=added.role,
            by=added.by,
        ),
        status=201,
    )


# ── people's messages ───────────────────────────────────────────────────────


async def list_messages(request: web.Request) -> web.Response:
    """A page, oldest first: the newest `limit` (skipping `offset`), those below `before`,
    or the first `limit` after `after`. Reading marks the page read.

    `hasMore` when paging back is exact: one message more is asked for and dropped (the
    oldest, so what is marked read is what is returned). Paging forward it is left out:
    the extra message would be the newest and would be marked read unseen."""
    identity = await authenticate(request)
    conversation_id = _path_uuid(request, "conversationId")
    limit = query_int(request, "limit", _MESSAGES_LIMIT, low=1, high=100) or _MESSAGES_LIMIT
    offset = query_int(request, "offset", 0, low=0, high=_INT32_MAX) or 0
    before = query_int(request, "before", None, low=1, high=_INT32_MAX)
    after = query_int(request, "after", None, low=0, high=_INT32_MAX)
    offset_given = request.query.get("offset", "") != ""
    if before is not None and after is not None:
        raise errors.InvalidInput("before: not together with after")
    if offset_given and (before is not None or after is not None):
        which = "before" if before is not None else "after"
        raise errors.InvalidInput(f"offset: not together with {which}")
    shared = request.app[SHARED]
    if after is not None:
        rows = await shared.messages(identity, conversation_id, limit=limit, after=after)
        pagination = MessagePagination(limit=limit, offset=0)
    else:
        rows = await shared.messages(
            identity, conversation_id, limit=limit + 1, offset=offset, before=before
        )
        has_more = len(rows) > limit
        rows = rows[-limit:] if has_more else rows
        pagination = MessagePagination(limit=limit, offset=offset, has_more=has_more)
    return json_response(
        MessagePage(messages=[_message_out(m) for m in rows], pagination=pagination)
    )


async def post_message(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, PostMessageRequest)
    message, count, duplicate = await request.app[SHARED].send(
        identity, body.conversation_id, body.content, client_msg_id=body.client_msg_id
    )
    return json_response(
        PostMessageResponse(
            message=_message_out(message), message_count=count, duplicate=duplicate
        ),
        status=200 if duplicate else 201,
    )


def people_routes() -> list[web.RouteDef]:
    """Registered before the seed's conversation routes (`conversation_routes` puts them
    first), so `/api/conversations/direct` is never read as a conversation id."""
    return [
        web.get("/api/profile", get_profile),
        web.patch("/api/profile", update_profile),
        web.get("/api/users/{userId}", get_user),
        web.post("/api/users/lookup", lookup_user),
        web.post("/api/conversations/direct", create_direct),
        web.post("/api/conversations/group", create_group),
        web.post("/api/conversations/{id}/participants", add_participant),
        web.get("/api/messages/{conversationId}", list_messages),
        web.post("/api/messages", post_message),
    ]
