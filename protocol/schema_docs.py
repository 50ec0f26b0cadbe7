"""Machine-readable contracts: AsyncAPI 3.0 for the Socket.IO events, OpenAPI 3.1 for REST.

Every payload schema comes from the Structs (`msgspec.json.schema_components`) and every
example is a Struct encoded as the server encodes it, so a changed Struct changes the
documents. `scripts/export_protocol_docs.py` writes them to `docs/`; a test fails while
the committed copies are stale. Each call builds a fresh document that shares nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any, NamedTuple

import msgspec

from protocol import privacy, rest
from protocol import socket_events as se
from protocol.names import ClientEvent, ErrorCode, ServerEvent

__all__ = ["asyncapi_document", "openapi_document", "render_json"]

Json = dict[str, Any]

_VERSION = "1.0.0"
_SOCKET_PATH = "/api/socket"
_CONV = "3f2b8c1e-6d4a-4e8b-9f1a-2c5d7e9b0a14"
_USER = "a1c9e2f0-5b3d-4c7e-8f2a-9d6b1e4c7a35"
_TS = "2024-01-15T10:00:00.000Z"
_ROOT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
_INT32_MAX = 2**31 - 1

_ERROR_MEANINGS = MappingProxyType(
    {
        ErrorCode.NOT_FOUND: "The conversation does not exist, is not yours, or was deleted.",
        ErrorCode.NO_CONVERSATION: "The socket has not joined a conversation.",
        ErrorCode.SEND_FAILED: "A send failed (the seed's code on the `error` event).",
        ErrorCode.EDIT_FAILED: "An edit failed, e.g. the sequence does not exist.",
        ErrorCode.JOIN_FAILED: "A join or leave failed for another reason.",
        ErrorCode.INVALID_PAYLOAD: "The payload breaks its contract; the message names the field.",
        ErrorCode.UNKNOWN_EVENT: "The event name is not part of the protocol.",
        ErrorCode.RATE_LIMITED: "Too many attempts; retry after `retryAfter` seconds.",
        ErrorCode.BUSY: "A reply is already being generated in this conversation.",
        ErrorCode.CANCELLED: "The reply was discarded by an edit or a delete.",
        ErrorCode.UNAUTHORIZED: "Missing, bad, expired or revoked token.",
        ErrorCode.CONFLICT: "Conflicts with existing data or a concurrent change; retry.",
        ErrorCode.LIMIT_EXCEEDED: "A size or count limit was exceeded.",
        ErrorCode.UNAVAILABLE: "The database or cache is down; retry later.",
        ErrorCode.INTERNAL: "An unexpected failure; never carries internals.",
        ErrorCode.AI_RATE_LIMITED: "The AI provider is rate limiting.",
        ErrorCode.AI_UNAVAILABLE: "The AI provider is unreachable or failing.",
        ErrorCode.AI_TIMEOUT: "The AI provider did not answer in time.",
        ErrorCode.AI_ERROR: "The AI provider failed otherwise (e.g. an empty reply).",
    }
)


def render_json(doc: Mapping[str, object]) -> bytes:
    """Stable bytes for a document: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _wire(payload: msgspec.Struct) -> Any:
    return msgspec.to_builtins(payload)


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _pascal(event: str) -> str:
    return "".join(part.title() for part in event.split("-"))


def _camel(event: str) -> str:
    name = _pascal(event)
    return name[:1].lower() + name[1:]


def _schemas(*modules: ModuleType) -> Json:
    """JSON Schemas of every Struct the modules export, plus the ErrorCode enumeration."""
    structs = [getattr(module, name) for module in modules for name in module.__all__]
    structs = [s for s in structs if isinstance(s, type) and issubclass(s, msgspec.Struct)]
    _, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    meanings = "\n".join(f"- `{code}`: {text}" for code, text in _ERROR_MEANINGS.items())
    components["ErrorCode"] = {
        "type": "string",
        "enum": [str(code) for code in ErrorCode],
        "description": "The `code` of error events, failed acks and error bodies:\n" + meanings,
    }
    return dict(components)


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
        return {"oneOf": [bare, _ref("schemas", "JoinRequest")]}

    stop_forms = {
        "oneOf": [
            {"type": "null"},
            {"type": "string", "format": "uuid"},
            _ref("schemas", "StopGenerationRequest"),
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
                conversation_id=_CONV,
                title=title,
                message_count=4,
                merkle_root=_ROOT,
                joined_at=_TS,
            ),
            [("seed", _CONV), ("ext-replay", {"conversationId": _CONV, "lastSeq": 2})],
        ),
        _ClientDoc(
            ClientEvent.LEAVE_CONVERSATION,
            "seed",
            "Leave a conversation's room; the others receive `user-left`. Same forms as join.",
            join_forms(),
            se.OkAck(success=True),
            [("seed", _CONV)],
        ),
        _ClientDoc(
            ClientEvent.SEND_MESSAGE,
            "seed",
            "Store a user message and stream the reply to the room (`ai-token`, `ai-complete`); "
            "the others also get `message-added` [ext] and `typing-start`. Acked once the "
            "reply is stored. [ext] `clientMsgId`: a repeat never stores or generates twice.",
            _ref("schemas", "SendMessageRequest"),
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
            _ref("schemas", "EditMessageRequest"),
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
            [("nothing", None), ("bare-id", _CONV), ("object", {"conversationId": _CONV})],
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


def _server_docs() -> list[tuple[ServerEvent, str, str, msgspec.Struct]]:
    generating = se.GeneratingState(sequence=5, partial="Day one:", token_index=3)
    return [
        (ServerEvent.STATE, "seed",
         "To a socket that joined: the conversation's head; [ext] `generating` while a reply "
         "streams (what was streamed so far).",
         se.StatePayload(conversation_id=_CONV, title="Trip planning", message_count=4,
                         merkle_root=_ROOT, joined_at=_TS, generating=generating)),
        (ServerEvent.USER_JOINED, "seed", "To the others in the room: a socket joined.",
         se.UserJoined(user_id=_USER, timestamp=_TS)),
        (ServerEvent.USER_LEFT, "seed",
         "To the others in the room: a socket left; `reason` when it disconnected.",
         se.UserLeft(user_id=_USER, timestamp=_TS, reason="transport close")),
        (ServerEvent.TYPING_START, "seed", "To the others in the room: a reply is coming.",
         se.TypingStart(user_id=_USER, timestamp=_TS)),
        (ServerEvent.AI_TOKEN, "seed",
         "To the room: one piece of the reply `sequence`; `partial` (all text so far) is "
         "left out for sockets that connected with `auth.partial: false` [ext].",
         se.AiToken(sequence=6, token=" Lisbon", partial="Day one: Lisbon", token_index=4)),  # noqa: S106
        (ServerEvent.AI_COMPLETE, "seed",
         "To the room: the reply is stored; [ext] `stopped: true` after `stop-generation`.",
         se.AiComplete(sequence=6, content="Day one: Lisbon", message_count=6, timestamp=_TS)),
        (ServerEvent.AI_ERROR, "ext",
         "[ext] To the room: the reply `sequence` failed; the user's message stays stored.",
         se.AiError(sequence=6, code=ErrorCode.AI_TIMEOUT, message="The model timed out")),
        (ServerEvent.MESSAGE_ADDED, "ext",
         "[ext] A stored user message, to the room's other sockets; also each message after "
         "`lastSeq`, replayed to a socket that joined with it.",
         se.MessageAdded(sequence=5, role="user", content="Plan three days in Lisbon",
                         timestamp=_TS, client_msg_id="m-42")),
        (ServerEvent.CONVERSATION_TRUNCATED, "seed",
         "To the room: an edit deleted every message after `editedSequence`.",
         se.ConversationTruncated(
             edited_sequence=3, deleted_count=3, new_message_count=3, by_user=_USER,
             timestamp=_TS, warning="Messages after this point have been permanently deleted")),
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
        _ref("schemas", "ErrorAck"),
        [
            {"name": "not-found", "payload": _wire(missing)},
            {"name": "limited", "payload": _wire(limited)},
        ],
    )


_ASYNCAPI_DESCRIPTION = (
    f"Socket.IO v5 / Engine.IO v4 (socket.io-client 4.x) at path `{_SOCKET_PATH}`, namespace "
    "`/`, transports `polling` and `websocket` with upgrade. Handshake: `auth: {token, "
    "partial?}` (schema HandshakeAuth) or `?token=` in the query. Refusals arrive as "
    "connect_error with the message `Authentication token required`, `Authentication "
    "failed: <reason>` or `Too many connections: at most <n> per user`.\n\n"
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
    schemas = _schemas(se) | {"HandshakeAuth": _handshake_auth()}
    messages: Json = {"ErrorAck": _error_ack()}
    channels: Json = {}
    operations: Json = {}

    def add(event: str, marker: str, summary: str, message: Json, action: str) -> Json:
        name, channel = _pascal(event), _camel(event)
        messages[name] = message
        channels[channel] = {"address": event, "messages": {channel: _ref("messages", name)}}
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
        name, reply = _pascal(doc.event), _camel(doc.event) + "Ack"
        messages[name + "Ack"] = _message(
            f"{doc.event} ack",
            f"Successful acknowledgement of `{doc.event}`.",
            _ref("schemas", type(doc.ack).__name__),
            [{"name": "success", "payload": _wire(doc.ack)}],
        )
        channels[reply] = {
            "address": None,
            "description": f"The acknowledgement callback of `{doc.event}`.",
            "messages": {
                "success": _ref("messages", name + "Ack"),
                "failure": _ref("messages", "ErrorAck"),
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
        payload = _ref("schemas", type(example).__name__)
        examples = [{"name": "example", "payload": _wire(example)}]
        add(event, marker, summary, _message(event, summary, payload, examples), "send")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SCCA chat: Socket.IO events",
            "version": _VERSION,
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
                "pathname": _SOCKET_PATH,
                "description": "The Socket.IO endpoint (Engine.IO polling and WebSocket).",
                "security": [_ref("securitySchemes", "handshakeToken")],
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


# ── REST (OpenAPI 3.1) ──────────────────────────────────────────────────────

_ERRORS = MappingProxyType(
    {
        400: ("BadRequest", "Bad input (INVALID_PAYLOAD, EDIT_FAILED); `error` names the field.",
              "INVALID_PAYLOAD", "content: expected a non-empty string"),
        401: ("Unauthorized", "Missing, bad, expired or revoked token (UNAUTHORIZED).",
              "UNAUTHORIZED", "Authentication required"),
        404: ("NotFound", "No such conversation, or not the caller's (NOT_FOUND).",
              "NOT_FOUND", "Conversation not found"),
        409: ("Conflict", "Conflicts with the current state (CONFLICT, BUSY, CANCELLED).",
              "CONFLICT", "The request conflicts with a concurrent change; retry"),
        413: ("PayloadTooLarge", "Request body too large (LIMIT_EXCEEDED).",
              "LIMIT_EXCEEDED", "Request body too large"),
        422: ("LimitExceeded", "A size or count limit was exceeded (LIMIT_EXCEEDED).",
              "LIMIT_EXCEEDED", "At most 10000 conversations per user"),
        429: ("RateLimited", "Too many attempts (RATE_LIMITED); see `Retry-After`.",
              "RATE_LIMITED", "Too many login attempts; try again later"),
        500: ("InternalError", "Unexpected failure (INTERNAL); never carries internals.",
              "INTERNAL", "Internal error"),
        502: ("BadGateway", "The AI provider failed (AI_* codes).",
              "AI_UNAVAILABLE", "The model provider is unavailable"),
        503: ("Unavailable", "Database or cache unavailable (UNAVAILABLE).",
              "UNAVAILABLE", "Database unavailable"),
    }
)  # fmt: skip
_SSE = (
    "`stream: true` (the default) answers `text/event-stream`: events of `event: <name>` and "
    "`data: <JSON>` lines. `start` (SseStart [ext]: `userSequence` of the stored message, "
    "`sequence` of the reply), one `token` per piece (SseToken `{token, partial}`), then "
    "`complete` (SseComplete `{messageCount, response}`, [ext] `stopped`) or `error` "
    "(SseError `{message}`, [ext] `code`). Comment lines `: heartbeat` keep an idle stream "
    "open; a client that goes away does not cancel the reply. Failures before the stream "
    "starts are JSON error bodies. `stream: false` answers SendResponse."
)


class _Route(NamedTuple):
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    request: type[msgspec.Struct] | None
    status: int
    response: type[msgspec.Struct] | None
    errors: tuple[int, ...] = ()
    params: tuple[str, ...] = ()
    public: bool = False
    note: tuple[int, str] | None = None


_C = "/api/conversations"
_ROUTES = (
    _Route("post", "/api/auth/register", "register", "auth", "Create an account; opens a "
           "session [ext]", rest.RegisterRequest, 201, rest.AuthResponse, (409,), public=True,
           note=(409, "The email is taken (CONFLICT).")),
    _Route("post", "/api/auth/login", "login", "auth", "Open a session [ext]", rest.LoginRequest,
           200, rest.AuthResponse, (401, 429), public=True),
    _Route("post", "/api/auth/logout", "logout", "auth", "Revoke this session and close its "
           "sockets [ext]", None, 204, None),
    _Route("get", "/api/auth/me", "me", "auth", "The account and its sessions [ext]", None, 200,
           rest.MeResponse),
    _Route("post", "/api/auth/password", "changePassword", "auth", "Change the password; other "
           "sessions are revoked [ext]", rest.PasswordChangeRequest, 204, None),
    _Route("get", _C, "listConversations", "conversations", "The caller's conversations, last "
           "updated first", None, 200, rest.ConversationList, params=("limit", "offset")),
    _Route("post", _C, "createConversation", "conversations", "Create a conversation",
           rest.CreateConversationRequest, 201, rest.CreatedConversation,
           note=(422, "Too many conversations, or body too large (LIMIT_EXCEEDED).")),
    _Route("get", _C + "/{id}", "getConversation", "conversations", "A conversation and a "
           "viewport of its messages", None, 200, rest.ConversationDetail, (404,),
           ("id", "from", "to")),
    _Route("patch", _C + "/{id}", "renameConversation", "conversations", "Rename [ext]",
           rest.RenameRequest, 200, rest.ConversationSummary, (404, 409), ("id",)),
    _Route("delete", _C + "/{id}", "deleteConversation", "conversations", "Soft delete; with "
           "`hard=true` [ext] erase for good (HardDeleteResponse): the conversation's key is "
           "destroyed first, so surviving copies of its tokens are unreadable", None, 200,
           rest.DeleteResponse, (404, 409), ("id", "hard")),
    _Route("get", _C + "/{id}/export", "exportConversation", "privacy", "[ext] Every message "
           "decrypted with its integrity status; `format=markdown` answers text/markdown",
           None, 200, privacy.ConversationExportDocument, (404,), ("id", "format")),
    _Route("post", _C + "/{id}/verify", "verifyConversation", "privacy", "[ext] Recompute the "
           "chain and decrypt every message", None, 200, privacy.VerifyResponse, (404,), ("id",)),
    _Route("post", _C + "/{id}/rotate-key", "rotateKey", "privacy", "[ext] A new conversation "
           "key; every token re-encrypted in batches", None, 200, privacy.RotateKeyResponse,
           (404, 409), ("id",)),
    _Route("get", "/api/account/export", "exportAccount", "privacy", "[ext] Every conversation "
           "of the account, decrypted", None, 200, privacy.AccountExport),
    _Route("delete", "/api/account", "deleteAccount", "privacy", "[ext] Erase the account: "
           "every conversation, session and key destroyed", privacy.DeleteAccountRequest, 204,
           None),
    _Route("post", _C + "/{id}/messages", "sendMessage", "conversations", "Send a message; the "
           "reply streams as Server-Sent Events", rest.SendRequest, 200, rest.SendResponse,
           (404, 409, 502), ("id",), note=(409, "BUSY: a reply is already being generated; "
           "CANCELLED: an edit or delete discarded the reply; CONFLICT: retry.")),
    _Route("patch", _C + "/{id}/edit", "editMessage", "conversations", "Destructive edit: every "
           "later message is deleted", rest.EditRequest, 200, rest.EditResponse, (404, 409),
           ("id",)),
    _Route("get", "/api/health", "health", "service", "200 when this instance can serve", None,
           200, rest.Health, public=True),
    _Route("get", "/api/openapi.json", "openapi", "service", "This document", None, 200, None,
           public=True),
    _Route("get", "/api/asyncapi.json", "asyncapi", "service", "The AsyncAPI document of the "
           "Socket.IO events", None, 200, None, public=True),
)  # fmt: skip


def _parameters() -> Json:
    def query(name: str, schema: Json, description: str) -> Json:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    first = {"type": "integer", "minimum": 1, "maximum": _INT32_MAX}
    return {
        "id": {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "description": "Conversation id; a malformed one is answered 404.",
        },
        "limit": query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                       "Page size."),
        "offset": query("offset", {"type": "integer", "minimum": 0, "maximum": _INT32_MAX,
                                   "default": 0}, "Conversations to skip."),
        "from": query("from", dict(first), "First sequence (<= `to`); default `to - 49`."),
        "to": query("to", dict(first), "Last sequence; default and cap: `messageCount`."),
        "hard": query("hard", {"type": "string", "enum": ["true", "false"]},
                      "[ext] `true`: erase for good instead of the soft delete."),
        "format": query("format", {"type": "string", "enum": ["json", "markdown"],
                                   "default": "json"}, "Export format."),
    }  # fmt: skip


def _error_responses() -> Json:
    responses: Json = {}
    for status, (name, description, code, message) in _ERRORS.items():
        retry = 30.0 if status == 429 else msgspec.UNSET
        example = rest.ErrorBody(error=message, code=code, retry_after=retry)
        content = {"schema": _ref("schemas", "ErrorBody"), "example": _wire(example)}
        responses[name] = {"description": description, "content": {"application/json": content}}
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}
    }
    responses["RateLimited"]["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return responses


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _success(route: _Route) -> Json:
    if route.response is None and route.status == 204:
        return {"description": "Done; no body."}
    if route.response is None:
        return _json({"type": "object"}, "The document.")
    ok = _json(_ref("schemas", route.response.__name__), "Success.")
    if route.request is rest.SendRequest:
        events = {"start": "SseStart", "token": "SseToken", "complete": "SseComplete"}
        events["error"] = "SseError"
        ok["content"]["text/event-stream"] = {
            # One schema per event, as SSE-aware tools (schemathesis) read the stream.
            "schema": {
                "type": "object",
                "description": "One Server-Sent Event, as described above; `data` is JSON.",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": list(events)},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                },
            },
            "x-sse-events": {event: _ref("schemas", name) for event, name in events.items()},
            "example": 'event: start\ndata: {"sequence":6,"userSequence":5}\n\n'
            'event: token\ndata: {"token":"Day","partial":"Day"}\n\n'
            'event: complete\ndata: {"messageCount":6,"response":"Day"}\n\n',
        }
        ok["description"] = _SSE
    if route.operation_id == "exportConversation":
        ok["content"]["text/markdown"] = {
            "schema": {"type": "string", "description": "The same export as Markdown."}
        }
    return ok


def _operation(route: _Route) -> Json:
    responses: Json = {str(route.status): _success(route)}
    statuses = {*route.errors, 500, 503} | (set() if route.public else {401})
    if route.request is not None:
        statuses |= {400, 413, 422}
    if set(route.params) - {"id"}:
        statuses.add(400)  # a malformed query parameter
    if route.operation_id == "health":
        statuses.discard(503)
        responses["503"] = _json(_ref("schemas", "Health"), "Not serving: names what is down.")
    for status in sorted(statuses):
        responses[str(status)] = _ref("responses", _ERRORS[status][0])
        if route.note is not None and route.note[0] == status:
            responses[str(status)]["description"] = route.note[1]
    operation: Json = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "responses": responses,
    }
    if route.params:
        operation["parameters"] = [_ref("parameters", name) for name in route.params]
    if route.request is not None:
        operation["requestBody"] = {
            "required": route.request is not rest.CreateConversationRequest,
            "content": {"application/json": {"schema": _ref("schemas", route.request.__name__)}},
        }
    if route.public:
        operation["security"] = []
    return operation


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 document of every REST route, error bodies and SSE included."""
    paths: Json = {}
    for route in _ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SCCA chat: REST API",
            "version": _VERSION,
            "description": "JSON over HTTP under `/api`, authenticated with `Authorization: "
            "Bearer <token>` (the JWT the socket uses too). Every error is an ErrorBody "
            "`{error, code?, retryAfter?}` whose `code` is an ErrorCode.",
        },
        "servers": [{"url": "http://localhost:8000", "description": "A local server."}],
        "tags": [
            {"name": "auth", "description": "[ext] Accounts and sessions."},
            {"name": "conversations", "description": "[seed] Conversations and messages."},
            {"name": "privacy", "description": "[ext] Export, erase, verify, rotate."},
            {"name": "service", "description": "Health and these documents."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(rest, privacy),
            "parameters": _parameters(),
            "responses": _error_responses(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
