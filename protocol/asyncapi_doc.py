"""The AsyncAPI 3.0 document of the Socket.IO events, built from the Structs."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from protocol import shared
from protocol import socket_events as se
from protocol.docs_common import (
    CONV,
    MESSAGE_ID,
    OTHER,
    ROOT,
    SOCKET_PATH,
    TS,
    USER,
    VERSION,
    Json,
    camel,
    component_schemas,
    pascal,
    ref,
    wire,
)
from protocol.names import ClientEvent, ErrorCode, ServerEvent
from protocol.shared import ConversationItem, LastMessage, Participant, PublicUser

__all__ = ["asyncapi_document"]


# ── Socket.IO (AsyncAPI 3.0) ────────────────────────────────────────────────


class _ClientDoc(NamedTuple):
    event: ClientEvent
    marker: str
    summary: str
    payload: Json | None
    ack: msgspec.Struct
    examples: list[tuple[str, Any]]


def _client_docs() -> list[_ClientDoc]:
    def join_forms() -> Json:
        bare = {"type": "string", "format": "uuid", "description": "[seed] the conversation id"}
        return {"oneOf": [bare, ref("schemas", "JoinRequest")]}

    stop_forms = {
        "oneOf": [
            {"type": "null"},
            {"type": "string", "format": "uuid"},
            ref("schemas", "StopGenerationRequest"),
        ]
    }
    title = "Trip planning"
    send = "Plan three days in Lisbon"
    return [
        _ClientDoc(
            ClientEvent.JOIN_CONVERSATION,
            "seed",
            "Join a conversation's room, leaving any other: `state` to this socket, "
            "`user-joined` to the others; NOT_FOUND for a conversation that is missing, "
            "deleted or someone else's. [ext] `{conversationId, lastSeq}` also replays every "
            "stored message after `lastSeq` as `message-added`.",
            join_forms(),
            se.JoinAck(
                success=True,
                conversation_id=CONV,
                title=title,
                message_count=4,
                merkle_root=ROOT,
                joined_at=TS,
            ),
            [("seed", CONV), ("ext-replay", {"conversationId": CONV, "lastSeq": 2})],
        ),
        _ClientDoc(
            ClientEvent.LEAVE_CONVERSATION,
            "seed",
            "Leave a conversation's room; the others receive `user-left`. Same forms as join.",
            join_forms(),
            se.OkAck(success=True),
            [("seed", CONV)],
        ),
        _ClientDoc(
            ClientEvent.SEND_MESSAGE,
            "seed",
            "Store a user message and stream the reply to the room (`ai-token`, `ai-complete`); "
            "the others also get `message-added` [ext] and `typing-start`. Acked once the "
            "reply is stored. [ext] `clientMsgId`: a repeat never stores or generates twice.",
            ref("schemas", "SendMessageRequest"),
            se.SendAck(success=True, message_count=6, sequence=6),
            [
                ("seed", {"content": send}),
                ("ext-idempotent", {"content": send, "clientMsgId": "m-42"}),
            ],
        ),
        _ClientDoc(
            ClientEvent.EDIT_MESSAGE,
            "seed",
            "Destructive edit: message `sequence` gets `newContent`, every later message is "
            "deleted for good; the room gets `conversation-truncated` then `needs-regeneration`, "
            "and an edited user message is answered again as `sequence + 1`.",
            ref("schemas", "EditMessageRequest"),
            se.EditAck(success=True, deleted_count=3, new_message_count=3),
            [("seed", {"sequence": 3, "newContent": "Plan four days in Porto"})],
        ),
        _ClientDoc(
            ClientEvent.STOP_GENERATION,
            "ext",
            "[ext] Stop the reply running in the joined conversation; what was streamed is "
            "stored and `ai-complete` says `stopped: true`. The ack says whether one ran.",
            stop_forms,
            se.StopAck(success=True, stopped=True),
            [("nothing", None), ("bare-id", CONV), ("object", {"conversationId": CONV})],
        ),
        _ClientDoc(
            ClientEvent.PING,
            "seed",
            "Liveness check, no argument: `pong` to this socket; [ext] the ack is "
            "`{success: true, timestamp}`.",
            None,
            se.PingAck(success=True, timestamp=1705312800000),
            [],
        ),
    ]


def _group_item() -> ConversationItem:
    people = [(USER, "Ada", "admin"), (OTHER, "Grace", "member")]
    return ConversationItem(
        id=CONV, title="Allotment neighbours", model="gpt-4o-mini", message_count=7,
        created_at=TS, updated_at=TS, merkle_root=ROOT, kind="group",
        participants=[
            Participant(user_id=uid, role=role, joined_at=TS,
                        user=PublicUser(id=uid, name=name, image=None))
            for uid, name, role in people
        ],
        last_message=LastMessage(id=MESSAGE_ID, sequence=7, sender_id=OTHER,
                                 preview="See you at six", timestamp=TS),
        unread_count=0, description="Seeds, tools and Saturday work parties",
        category="FOOD_SHARE",
    )  # fmt: skip


def _server_docs() -> list[tuple[ServerEvent, str, str, msgspec.Struct]]:
    generating = se.GeneratingState(sequence=5, partial="Day one:", token_index=3)
    return [
        (ServerEvent.STATE, "seed",
         "To a socket that joined: the conversation's head; [ext] `generating` while a reply "
         "streams (what was streamed so far).",
         se.StatePayload(conversation_id=CONV, title="Trip planning", message_count=4,
                         merkle_root=ROOT, joined_at=TS, generating=generating)),
        (ServerEvent.USER_JOINED, "seed", "To the others in the room: a socket joined.",
         se.UserJoined(user_id=USER, timestamp=TS)),
        (ServerEvent.USER_LEFT, "seed",
         "To the others in the room: a socket left; `reason` when it disconnected.",
         se.UserLeft(user_id=USER, timestamp=TS, reason="transport close")),
        (ServerEvent.TYPING_START, "seed", "To the others in the room: a reply is coming.",
         se.TypingStart(user_id=USER, timestamp=TS)),
        (ServerEvent.AI_TOKEN, "seed",
         "To the room: one piece of the reply `sequence`; `partial` (all text so far) is "
         "left out for sockets that connected with `auth.partial: false` [ext].",
         se.AiToken(sequence=6, token=" Lisbon", partial="Day one: Lisbon", token_index=4)),  # noqa: S106
        (ServerEvent.AI_COMPLETE, "seed",
         "To the room: the reply is stored; [ext] `stopped: true` after `stop-generation`.",
         se.AiComplete(sequence=6, content="Day one: Lisbon", message_count=6, timestamp=TS)),
        (ServerEvent.AI_ERROR, "ext",
         "[ext] To the room: the reply `sequence` failed; the user's message stays stored.",
         se.AiError(sequence=6, code=ErrorCode.AI_TIMEOUT, message="The model timed out")),
        (ServerEvent.MESSAGE_ADDED, "ext",
         "[ext] A stored user message, to the room's other sockets; also each message after "
         "`lastSeq`, replayed to a socket that joined with it. In a direct or group "
         "conversation every member's message, with `conversationId`, `id`, `senderId` and "
         "`sender {id, name, image}`.",
         se.MessageAdded(sequence=7, role="user", content="See you at six",
                         timestamp=TS, client_msg_id="m-42", conversation_id=CONV,
                         id=MESSAGE_ID, sender_id=OTHER,
                         sender=PublicUser(id=OTHER, name="Grace", image=None))),
        (ServerEvent.MEMBER_ADDED, "ext",
         "[ext] To a group's room: an admin added a member (`by`).",
         se.MemberAdded(conversation_id=CONV, user_id=OTHER, role="member", by=USER)),
        (ServerEvent.CONVERSATION_ADDED, "ext",
         "[ext] To a user's own room `user:{id}` (every socket of theirs, any instance): a "
         "direct or group conversation they now belong to, as `GET /api/conversations` "
         "lists it.",
         se.ConversationAdded(conversation=_group_item())),
        (ServerEvent.CONVERSATION_UPDATED, "ext",
         "[ext] To each member's own room `user:{id}`: a direct or group conversation has a "
         "new last message; `unreadCount` is that member's.",
         se.ConversationUpdated(
             conversation_id=CONV, unread_count=2,
             last_message=LastMessage(id=MESSAGE_ID, sequence=7, sender_id=OTHER,
                                      preview="See you at six", timestamp=TS))),
        (ServerEvent.CONVERSATION_TRUNCATED, "seed",
         "To the room: an edit deleted every message after `editedSequence`.",
         se.ConversationTruncated(
             edited_sequence=3, deleted_count=3, new_message_count=3, by_user=USER,
             timestamp=TS, warning="Messages after this point have been permanently deleted")),
        (ServerEvent.NEEDS_REGENERATION, "seed",
         "To the room, after `conversation-truncated`: replies from `fromSequence` are gone.",
         se.NeedsRegeneration(from_sequence=4, reason="edit", edited_sequence=3)),
        (ServerEvent.ERROR, "seed",
         "To the socket whose event failed, with the failed ack; `code` is an ErrorCode.",
         se.ErrorEvent(code=ErrorCode.NOT_FOUND, message="Conversation not found")),
        (ServerEvent.PONG, "seed", "Answer to `ping`: milliseconds since the epoch.",
         se.Pong(timestamp=1705312800000)),
    ]  # fmt: skip


def _message(name: str, summary: str, payload: Json | None, examples: list[Json]) -> Json:
    message: Json = {"name": name, "title": name, "summary": summary}
    if payload is not None:
        message |= {"payload": payload, "examples": examples}
    return message


def _error_ack() -> Json:
    missing = se.ErrorAck(success=False, code=ErrorCode.NOT_FOUND, error="Conversation not found")
    limited = se.ErrorAck(
        success=False, code=ErrorCode.RATE_LIMITED, error="Too many requests", retry_after=2.5
    )
    return _message(
        "ack (failure)",
        "Every failed ack: `{success: false, code, error}`; `code` is an ErrorCode ([ext] "
        "except on join), `retryAfter` [ext] seconds when limited. An `error` event is sent too.",
        ref("schemas", "ErrorAck"),
        [
            {"name": "not-found", "payload": wire(missing)},
            {"name": "limited", "payload": wire(limited)},
        ],
    )


_ASYNCAPI_DESCRIPTION = (
    f"Socket.IO v5 / Engine.IO v4 (socket.io-client 4.x) at path `{SOCKET_PATH}`, namespace "
    "`/`, transports `polling` and `websocket` with upgrade. Handshake: `auth: {token, "
    "partial?}` (schema HandshakeAuth) or `?token=` in the query. Refusals arrive as "
    "connect_error with the message `Authentication token required`, `Authentication "
    "failed: <reason>`, `Too many connections: at most <n> per user` or `Too many "
    "connections from this address` (`data.retryAfter` in seconds). A frame that does not "
    "decode closes its connection (websocket close code 1002).\n\n"
    "Channels with an address are event names. Each client event has an `...Ack` reply "
    "channel (address null): its acknowledgement callback, called exactly once, on success "
    "and on every failure. An unknown event is answered with `error` UNKNOWN_EVENT. Tag "
    "`seed`: the original protocol; `ext`: compatible extensions. Timestamps are ISO 8601 "
    "UTC strings, except `pong` (milliseconds)."
)


def _handshake_auth() -> Json:
    partial = "[ext] false: `ai-token` without the growing `partial`."
    return {
        "title": "HandshakeAuth",
        "description": "The Socket.IO handshake `auth` object.",
        "type": "object",
        "properties": {
            "token": {"type": "string", "minLength": 1, "description": "The JWT, as for REST."},
            "partial": {"type": "boolean", "default": True, "description": partial},
        },
        "required": ["token"],
    }


def asyncapi_document() -> dict[str, object]:
    """The AsyncAPI 3.0 document of every Socket.IO event, both directions, with acks."""
    schemas = component_schemas(se, shared) | {"HandshakeAuth": _handshake_auth()}
    messages: Json = {"ErrorAck": _error_ack()}
    channels: Json = {}
    operations: Json = {}

    def add(event: str, marker: str, summary: str, message: Json, action: str) -> Json:
        name, channel = pascal(event), camel(event)
        messages[name] = message
        channels[channel] = {"address": event, "messages": {channel: ref("messages", name)}}
        operations[action + name] = operation = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "tags": [{"name": marker}],
            "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
        }
        return operation

    for doc in _client_docs():
        examples = [{"name": n, "payload": p} for n, p in doc.examples]
        operation = add(
            doc.event, doc.marker, doc.summary,
            _message(doc.event, doc.summary, doc.payload, examples), "receive",
        )  # fmt: skip
        name, reply = pascal(doc.event), camel(doc.event) + "Ack"
        messages[name + "Ack"] = _message(
            f"{doc.event} ack",
            f"Successful acknowledgement of `{doc.event}`.",
            ref("schemas", type(doc.ack).__name__),
            [{"name": "success", "payload": wire(doc.ack)}],
        )
        channels[reply] = {
            "address": None,
            "description": f"The acknowledgement callback of `{doc.event}`.",
            "messages": {
                "success": ref("messages", name + "Ack"),
                "failure": ref("messages", "ErrorAck"),
            },
        }
        operation["reply"] = {
            "channel": {"$ref": f"#/channels/{reply}"},
            "messages": [
                {"$ref": f"#/channels/{reply}/messages/success"},
                {"$ref": f"#/channels/{reply}/messages/failure"},
            ],
        }
    for event, marker, summary, example in _server_docs():
        payload = ref("schemas", type(example).__name__)
        examples = [{"name": "example", "payload": wire(example)}]
        add(event, marker, summary, _message(event, summary, payload, examples), "send")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SCCA chat: Socket.IO events",
            "version": VERSION,
            "description": _ASYNCAPI_DESCRIPTION,
            "tags": [
                {"name": "seed", "description": "Behaviour of the original protocol."},
                {"name": "ext", "description": "Compatible extensions of ours."},
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "pathname": SOCKET_PATH,
                "description": "The Socket.IO endpoint (Engine.IO polling and WebSocket).",
                "security": [ref("securitySchemes", "handshakeToken")],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "handshakeToken": {
                    "type": "httpApiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The JWT from `/api/auth/login` or `/api/auth/register`: "
                    "`auth.token` in the handshake (HandshakeAuth) or `?token=` in the query.",
                }
            },
        },
    }
