"""The OpenAPI 3.1 document of the REST routes, built from the Structs."""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import msgspec

from protocol import privacy, rest, shared
from protocol.docs_common import VERSION, Json, component_schemas, ref, wire
from protocol.names import CSRF_HEADER, SESSION_COOKIE

__all__ = ["openapi_document"]

_INT32_MAX = 2**31 - 1


# ── REST (OpenAPI 3.1) ──────────────────────────────────────────────────────

_ERRORS = MappingProxyType(
    {
        400: ("BadRequest", "Bad input (INVALID_PAYLOAD, EDIT_FAILED); `error` names the field.",
              "INVALID_PAYLOAD", "content: expected a non-empty string"),
        401: ("Unauthorized", "Missing, bad, expired or revoked token (UNAUTHORIZED).",
              "UNAUTHORIZED", "Authentication required"),
        403: ("Forbidden", "A change authorized by the session cookie without the session's "
              "CSRF token in X-CSRF-Token (FORBIDDEN); bearer requests never get it.",
              "FORBIDDEN", "CSRF token missing or wrong: send the scca_csrf cookie's value in "
              "X-CSRF-Token"),
        404: ("NotFound", "No such conversation, or not the caller's (NOT_FOUND).",
              "NOT_FOUND", "Conversation not found"),
        409: ("Conflict", "Conflicts with the current state (CONFLICT, BUSY, CANCELLED).",
              "CONFLICT", "The request conflicts with a concurrent change; retry"),
        413: ("PayloadTooLarge", "Request body too large (LIMIT_EXCEEDED).",
              "LIMIT_EXCEEDED", "Request body too large"),
        422: ("LimitExceeded", "A size or count limit was exceeded (LIMIT_EXCEEDED).",
              "LIMIT_EXCEEDED", "At most 10000 conversations per user"),
        429: ("RateLimited", "Too many attempts (RATE_LIMITED); see `Retry-After`.",
              "RATE_LIMITED", "Too many failed attempts; try again later"),
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
    notes: tuple[tuple[int, str], ...] = ()
    # another success status with the same body, and what it means
    also: tuple[int, str] | None = None


_C = "/api/conversations"
_PATH_PARAMS = frozenset({"id", "conversationId", "userId"})
_ROUTES = (
    _Route("post", "/api/auth/register", "register", "auth", "Create an account; opens a "
           "session [ext]", rest.RegisterRequest, 201, rest.AuthResponse, (409, 429), public=True,
           notes=((409, "The email is taken (CONFLICT)."),)),
    _Route("post", "/api/auth/login", "login", "auth", "Open a session [ext]", rest.LoginRequest,
           200, rest.AuthResponse, (401, 429), public=True),
    _Route("post", "/api/auth/logout", "logout", "auth", "Revoke this session and close its "
           "sockets [ext]", None, 204, None),
    _Route("get", "/api/auth/me", "me", "auth", "The account and its sessions [ext]", None, 200,
           rest.MeResponse),
    _Route("post", "/api/auth/password", "changePassword", "auth", "Change the password and "
           "the data key; other sessions are revoked [ext]", rest.PasswordChangeRequest, 204,
           None, (409, 429), notes=((409, "Another password change won the race (CONFLICT)."),)),
    _Route("get", _C, "listConversations", "conversations", "The caller's conversations, last "
           "updated first", None, 200, rest.ConversationList, params=("limit", "offset")),
    _Route("post", _C, "createConversation", "conversations", "Create a conversation",
           rest.CreateConversationRequest, 201, rest.CreatedConversation, (429,),
           notes=((422, "Too many conversations, or body too large (LIMIT_EXCEEDED)."),)),
    _Route("get", _C + "/{id}", "getConversation", "conversations", "A conversation and a "
           "viewport of its messages", None, 200, rest.ConversationDetail, (404, 429),
           ("id", "from", "to")),
    _Route("patch", _C + "/{id}", "renameConversation", "conversations", "Rename [ext]",
           rest.RenameRequest, 200, rest.ConversationSummary, (404, 409), ("id",)),
    _Route("delete", _C + "/{id}", "deleteConversation", "conversations", "Soft delete; with "
           "`hard=true` [ext] erase for good (HardDeleteResponse): the conversation's key is "
           "destroyed first, so surviving copies of its tokens are unreadable", None, 200,
           rest.DeleteResponse, (404, 409), ("id", "hard")),
    _Route("get", _C + "/{id}/export", "exportConversation", "privacy", "[ext] Every message "
           "decrypted with its integrity status; `format=markdown` answers text/markdown",
           None, 200, privacy.ConversationExportDocument, (404, 429), ("id", "format")),
    _Route("post", _C + "/{id}/verify", "verifyConversation", "privacy", "[ext] Recompute the "
           "chain and decrypt every message", None, 200, privacy.VerifyResponse, (404, 429),
           ("id",)),
    _Route("post", _C + "/{id}/rotate-key", "rotateKey", "privacy", "[ext] A new conversation "
           "key; every token re-encrypted in batches", None, 200, privacy.RotateKeyResponse,
           (404, 409, 429), ("id",)),
    _Route("get", "/api/account/export", "exportAccount", "privacy", "[ext] Every conversation "
           "of the account, decrypted", None, 200, privacy.AccountExport, (429,)),
    _Route("delete", "/api/account", "deleteAccount", "privacy", "[ext] Erase the account: "
           "every conversation, session and key destroyed", privacy.DeleteAccountRequest, 204,
           None, (429,)),
    _Route("post", _C + "/{id}/messages", "sendMessage", "conversations", "Send a message; the "
           "reply streams as Server-Sent Events", rest.SendRequest, 200, rest.SendResponse,
           (404, 409, 429, 502), ("id",), notes=((409, "BUSY: a reply is already being "
           "generated; CANCELLED: an edit or delete discarded the reply; CONFLICT: retry; "
           "NOT_SUPPORTED [ext]: a direct or group conversation (nothing is stored: people's "
           "messages go through POST /api/messages)."),)),
    _Route("patch", _C + "/{id}/edit", "editMessage", "conversations", "Destructive edit: every "
           "later message is deleted", rest.EditRequest, 200, rest.EditResponse, (404, 409, 429),
           ("id",)),
    _Route("get", "/api/profile", "getProfile", "people", "[ext] The caller's public profile "
           "`{id, name, image}`", None, 200, shared.PublicUser),
    _Route("patch", "/api/profile", "updateProfile", "people", "[ext] Change the caller's name "
           "or image: a field left out is kept, null clears it", rest.ProfileUpdateRequest, 200,
           shared.PublicUser),
    _Route("get", "/api/users/{userId}", "getUser", "people", "[ext] A person's public profile "
           "`{id, name, image}`", None, 200, shared.PublicUser, (404,), ("userId",),
           notes=((404, "No such person (NOT_FOUND); a malformed id too."),)),
    _Route("post", "/api/users/lookup", "lookupUser", "people", "[ext] Find a person by their "
           "exact email (a POST: the email stays out of URLs and logs); counted per user",
           rest.LookupRequest, 200, rest.LookupResponse, (404, 429),
           notes=((404, "No person with this email (NOT_FOUND): one answer for an unknown and "
                  "a malformed email."),)),
    _Route("post", _C + "/direct", "createDirect", "people", "[ext] The caller's direct "
           "conversation with `userId`, created if there is none (201), else the existing one "
           "(200)", rest.DirectRequest, 201, rest.ConversationResponse, (404, 409, 429),
           notes=((404, "No such person (NOT_FOUND)."), (409, "KEYS_MISSING: the person has not "
                  "signed in since keys were introduced; CONFLICT: retry.")),
           also=(200, "The direct conversation existed already.")),
    _Route("post", _C + "/group", "createGroup", "people", "[ext] A group: the caller is its "
           "admin, `memberIds` its members", rest.GroupRequest, 201, rest.ConversationResponse,
           (404, 409, 429), notes=((404, "A member is no such person (NOT_FOUND)."),
           (409, "KEYS_MISSING: a member has not signed in since keys were introduced."),
           (422, "Too many members or groups, or body too large (LIMIT_EXCEEDED)."))),
    _Route("post", _C + "/{id}/participants", "addParticipant", "people", "[ext] An admin adds "
           "a member to a group", rest.AddParticipantRequest, 201, rest.ParticipantAdded,
           (403, 404, 409, 429), ("id",),
           notes=((403, "The caller is a member but not an admin (FORBIDDEN), or a cookie "
                  "without its CSRF token."), (404, "No such conversation or person, or not "
                  "the caller's (NOT_FOUND)."), (409, "CONFLICT: already a member; "
                  "NOT_SUPPORTED: not a group; KEYS_MISSING: the person has not signed in "
                  "since keys were introduced."), (422, "The group is full, or body too large "
                  "(LIMIT_EXCEEDED)."))),
    _Route("get", "/api/messages/{conversationId}", "listMessages", "people", "[ext] A page of "
           "messages, oldest first: the newest `limit` (skipping `offset`), those below "
           "`before`, or the first after `after`; marks the page read", None, 200,
           rest.MessagePage, (404, 429),
           ("conversationId", "messagesLimit", "messagesOffset", "before", "after"),
           notes=((400, "A malformed query parameter, or `before`, `after` and `offset` "
                  "together (INVALID_PAYLOAD)."),)),
    _Route("post", "/api/messages", "postMessage", "people", "[ext] Send a person's message "
           "to a direct or group conversation", rest.PostMessageRequest, 201,
           rest.PostMessageResponse, (404, 409, 429),
           notes=((409, "NOT_SUPPORTED: an ai conversation (its messages go through "
                  "POST /api/conversations/{id}/messages)."),),
           also=(200, "A repeated `clientMsgId`: the message first stored, `duplicate: true`.")),
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

    def path(name: str, description: str) -> Json:
        schema = {"type": "string", "format": "uuid"}
        return {"name": name, "in": "path", "required": True, "schema": schema,
                "description": description}

    first = {"type": "integer", "minimum": 1, "maximum": _INT32_MAX}
    return {
        "id": path("id", "Conversation id; a malformed one is answered 404."),
        "conversationId": path("conversationId", "[ext] Conversation id; a malformed one is "
                               "answered 404."),
        "userId": path("userId", "[ext] A person's id; a malformed one is answered 404."),
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
        "messagesLimit": query("limit", {"type": "integer", "minimum": 1, "maximum": 100,
                                         "default": 50}, "[ext] Page size."),
        "messagesOffset": query("offset", {"type": "integer", "minimum": 0,
                                           "maximum": _INT32_MAX, "default": 0},
                                "[ext] Newest messages to skip; not with `before` or `after`."),
        "before": query("before", dict(first), "[ext] Only messages below this sequence (the "
                        "newest `limit` of them); not with `after` or `offset`."),
        "after": query("after", {"type": "integer", "minimum": 0, "maximum": _INT32_MAX},
                       "[ext] Only messages above this sequence (the first `limit` of them); "
                       "not with `before` or `offset`."),
    }  # fmt: skip


def _error_responses() -> Json:
    responses: Json = {}
    for status, (name, description, code, message) in _ERRORS.items():
        retry = 30.0 if status == 429 else msgspec.UNSET
        example = rest.ErrorBody(error=message, code=code, retry_after=retry)
        content = {"schema": ref("schemas", "ErrorBody"), "example": wire(example)}
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
    ok = _json(ref("schemas", route.response.__name__), "Success.")
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
            "x-sse-events": {event: ref("schemas", name) for event, name in events.items()},
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
    if not route.public and route.method != "get":
        statuses.add(403)  # the session cookie without its CSRF token
    if route.request is not None:
        statuses |= {400, 413, 422}
    if set(route.params) - _PATH_PARAMS:
        statuses.add(400)  # a malformed query parameter
    if route.operation_id == "health":
        statuses.discard(503)
        responses["503"] = _json(ref("schemas", "Health"), "Not serving: names what is down.")
    if route.also is not None:
        also = _success(route)
        also["description"] = route.also[1]
        responses[str(route.also[0])] = also
    notes = dict(route.notes)
    for status in sorted(statuses):
        responses[str(status)] = ref("responses", _ERRORS[status][0])
        if status in notes:
            responses[str(status)]["description"] = notes[status]
    operation: Json = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "responses": responses,
    }
    if route.params:
        operation["parameters"] = [ref("parameters", name) for name in route.params]
    if route.request is not None:
        operation["requestBody"] = {
            "required": route.request is not rest.CreateConversationRequest,
            "content": {"application/json": {"schema": ref("schemas", route.request.__name__)}},
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
            "version": VERSION,
            "description": "JSON over HTTP under `/api`, authenticated with `Authorization: "
            "Bearer <token>` (the JWT the socket uses too) or, in a browser, with the "
            "`scca_session` cookie that login and register set (HttpOnly, SameSite=Lax). "
            "A change (POST, PATCH, DELETE) authorized by the cookie must carry the "
            "session's CSRF token (the `scca_csrf` cookie, and `csrfToken` of the login "
            "answer) in `X-CSRF-Token`, else 403 FORBIDDEN. CORS answers the origins of "
            "CORS_ORIGINS, credentials included. Every error is an ErrorBody "
            "`{error, code?, retryAfter?}` whose `code` is an ErrorCode.",
        },
        "servers": [{"url": "http://localhost:8000", "description": "A local server."}],
        "tags": [
            {"name": "auth", "description": "[ext] Accounts and sessions."},
            {"name": "conversations", "description": "[seed] Conversations and messages."},
            {"name": "people", "description": "[ext] Profiles, direct and group "
             "conversations, members, people's messages (seed 004's routes)."},
            {"name": "privacy", "description": "[ext] Export, erase, verify, rotate."},
            {"name": "service", "description": "Health and these documents."},
        ],
        "security": [{"bearerAuth": []}, {"cookieAuth": [], "csrfToken": []}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(rest, privacy, shared),
            "parameters": _parameters(),
            "responses": _error_responses(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "Browsers: set by login and register, cleared by logout.",
                },
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": "With the cookie, on every change: the session's CSRF "
                    "token (`csrfToken` of the login answer, or the `scca_csrf` cookie).",
                },
            },
        },
    }
