"""What the AsyncAPI and OpenAPI documents share: example values, error meanings, the
schemas of the Structs, and stable rendering."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

import msgspec

from protocol.names import ErrorCode

__all__ = [
    "CONV",
    "ERROR_MEANINGS",
    "MESSAGE_ID",
    "OTHER",
    "ROOT",
    "SOCKET_PATH",
    "TS",
    "USER",
    "VERSION",
    "Json",
    "camel",
    "component_schemas",
    "pascal",
    "ref",
    "render_json",
    "wire",
]

Json = dict[str, Any]

VERSION = "1.0.0"
SOCKET_PATH = "/api/socket"
CONV = "3f2b8c1e-6d4a-4e8b-9f1a-2c5d7e9b0a14"
USER = "a1c9e2f0-5b3d-4c7e-8f2a-9d6b1e4c7a35"
OTHER = "c7d2a9e4-1f6b-4a3c-9e8d-5b2f7a1c3e60"
MESSAGE_ID = "e4b7c2d9-8a1f-4e6b-a3c5-7d9e2f1b4a86"
TS = "2024-01-15T10:00:00.000Z"
ROOT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

ERROR_MEANINGS = MappingProxyType(
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
        ErrorCode.UNAVAILABLE: (
            "The database or cache is down, or the server is draining; retry later"
            " (after `retryAfter` seconds when given)."
        ),
        ErrorCode.INTERNAL: "An unexpected failure; never carries internals.",
        ErrorCode.FORBIDDEN: (
            "A change authorized by the session cookie without its CSRF token, a CORS"
            " preflight from an origin outside CORS_ORIGINS, or a member's change that"
            " needs a group role they do not have (adding members: admins)."
        ),
        ErrorCode.KEYS_MISSING: (
            "The person has no key pair yet (an account from before shared conversations):"
            " they get one when they next sign in; add them then."
        ),
        ErrorCode.NOT_SUPPORTED: (
            "This kind of conversation does not offer the operation (e.g. the destructive"
            " edit and key rotation of `ai` conversations, in a direct or group one)."
        ),
        ErrorCode.REPLY_LOST: (
            "`ai-error` only: the server streaming this reply stopped; the question is"
            " stored, nothing of the reply is, and the conversation accepts a new send."
        ),
        ErrorCode.AI_RATE_LIMITED: "The AI provider is rate limiting.",
        ErrorCode.AI_UNAVAILABLE: "The AI provider is unreachable or failing.",
        ErrorCode.AI_TIMEOUT: "The AI provider did not answer in time.",
        ErrorCode.AI_ERROR: "The AI provider failed otherwise (e.g. an empty reply).",
    }
)


def render_json(doc: Mapping[str, object]) -> bytes:
    """Stable bytes for a document: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def wire(payload: msgspec.Struct) -> Any:
    return msgspec.to_builtins(payload)


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def pascal(event: str) -> str:
    return "".join(part.title() for part in event.split("-"))


def camel(event: str) -> str:
    name = pascal(event)
    return name[:1].lower() + name[1:]


def component_schemas(*modules: ModuleType) -> Json:
    """JSON Schemas of every Struct the modules export, plus the ErrorCode enumeration."""
    structs = [getattr(module, name) for module in modules for name in module.__all__]
    structs = [s for s in structs if isinstance(s, type) and issubclass(s, msgspec.Struct)]
    _, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    meanings = "\n".join(f"- `{code}`: {text}" for code, text in ERROR_MEANINGS.items())
    components["ErrorCode"] = {
        "type": "string",
        "enum": [str(code) for code in ErrorCode],
        "description": "The `code` of error events, failed acks and error bodies:\n" + meanings,
    }
    return dict(components)
