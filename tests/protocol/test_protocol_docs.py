"""The contract as documents: wire names, exports, and the committed AsyncAPI/OpenAPI files."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

import protocol
from protocol import decode, rest
from protocol import socket_events as se
from protocol.names import ClientEvent, ErrorCode, ServerEvent
from protocol.schema_docs import asyncapi_document, openapi_document, render_json

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TS = "2024-01-15T10:00:00.000Z"
USER = "a1c9e2f0-5b3d-4c7e-8f2a-9d6b1e4c7a35"


def _keys(payload: msgspec.Struct) -> set[str]:
    """The wire keys, as both the socket (to_builtins) and REST (json.encode) paths send them."""
    built = msgspec.to_builtins(payload)
    encoded = json.loads(msgspec.json.encode(payload))
    assert built == encoded
    return set(built)


# ── wire names (PROTOCOL.md) ────────────────────────────────────────────────

STATE: dict[str, Any] = {
    "conversation_id": "c",
    "title": None,
    "message_count": 0,
    "merkle_root": None,
    "joined_at": TS,
}

WIRE: list[tuple[str, msgspec.Struct, set[str]]] = [
    ("state", se.StatePayload(**STATE),
     {"conversationId", "title", "messageCount", "merkleRoot", "joinedAt"}),
    ("state+generating", se.StatePayload(
        **STATE, generating=se.GeneratingState(sequence=2, partial="", token_index=0)),
     {"conversationId", "title", "messageCount", "merkleRoot", "joinedAt", "generating"}),
    ("ai-token", se.AiToken(sequence=2, token="a", partial="a", token_index=1),
     {"sequence", "token", "partial", "tokenIndex"}),
    ("ai-token delta", se.AiToken(sequence=2, token="a", token_index=1),
     {"sequence", "token", "tokenIndex"}),
    ("ai-complete", se.AiComplete(sequence=2, content="", message_count=2, timestamp=TS),
     {"sequence", "content", "messageCount", "timestamp"}),
    ("ai-complete stopped",
     se.AiComplete(sequence=2, content="a", message_count=2, timestamp=TS, stopped=True),
     {"sequence", "content", "messageCount", "timestamp", "stopped"}),
    ("conversation-truncated", se.ConversationTruncated(
        edited_sequence=1, deleted_count=0, new_message_count=1, by_user=USER, timestamp=TS,
        warning="w"),
     {"editedSequence", "deletedCount", "newMessageCount", "byUser", "timestamp", "warning"}),
    ("needs-regeneration", se.NeedsRegeneration(from_sequence=2, reason="edit",
                                                edited_sequence=1),
     {"fromSequence", "reason", "editedSequence"}),
    ("error", se.ErrorEvent(code="NOT_FOUND", message="Conversation not found"),
     {"code", "message"}),
    ("pong", se.Pong(timestamp=0), {"timestamp"}),
    ("user-joined", se.UserJoined(user_id=USER, timestamp=TS), {"userId", "timestamp"}),
    ("user-left", se.UserLeft(user_id=USER, timestamp=TS), {"userId", "timestamp"}),
    ("user-left disconnect", se.UserLeft(user_id=USER, timestamp=TS, reason="transport close"),
     {"userId", "timestamp", "reason"}),
    ("typing-start", se.TypingStart(user_id=USER, timestamp=TS), {"userId", "timestamp"}),
    ("ai-error", se.AiError(sequence=2, code="AI_ERROR", message="m"),
     {"sequence", "code", "message"}),
    ("message-added", se.MessageAdded(sequence=1, role="user", content="c", timestamp=TS),
     {"sequence", "role", "content", "timestamp"}),
    # acks: `success` stays although omit_defaults is on
    ("join ack", se.JoinAck(success=True, **STATE),
     {"success", "conversationId", "title", "messageCount", "merkleRoot", "joinedAt"}),
    ("send ack", se.SendAck(success=True, message_count=0), {"success", "messageCount"}),
    ("edit ack", se.EditAck(success=True, deleted_count=0, new_message_count=0),
     {"success", "deletedCount", "newMessageCount"}),
    ("ok ack", se.OkAck(success=True), {"success"}),
    ("stop ack", se.StopAck(success=True, stopped=False), {"success", "stopped"}),
    ("error ack", se.ErrorAck(success=False, code="NOT_FOUND", error="e"),
     {"success", "code", "error"}),
    ("error ack limited", se.ErrorAck(success=False, code="RATE_LIMITED", error="e",
                                      retry_after=1.5),
     {"success", "code", "error", "retryAfter"}),
    # REST bodies
    ("conversation summary", rest.ConversationSummary(
        id="i", title=None, model="m", message_count=0, created_at=TS, updated_at=TS,
        merkle_root=None),
     {"id", "title", "model", "messageCount", "createdAt", "updatedAt", "merkleRoot"}),
    ("pagination", rest.Pagination(limit=20, offset=0, has_more=False),
     {"limit", "offset", "hasMore"}),
    ("created", rest.CreatedConversation(id="i", title=None, model="m", message_count=0,
                                         created_at=TS),
     {"id", "title", "model", "messageCount", "createdAt"}),
    ("viewport", rest.Viewport(from_=1, to=2), {"from", "to"}),
    ("integrity", rest.Integrity(valid=True, last_valid_sequence=0),
     {"valid", "lastValidSequence"}),
    ("message", rest.MessageOut(sequence=1, is_decrypted=True, role="user", content="c",
                                timestamp=TS, content_hash="h"),
     {"sequence", "role", "content", "timestamp", "contentHash", "isDecrypted"}),
    ("delete", rest.DeleteResponse(success=True, deleted_at=TS), {"success", "deletedAt"}),
    ("send response", rest.SendResponse(response="r", message_count=2, sequence=2),
     {"response", "messageCount", "sequence"}),
    ("edit response", rest.EditResponse(
        success=True, edited_sequence=1, deleted_count=0, space_reclaimed_bytes=0,
        new_message_count=1, needs_regeneration_from=2, warning="w"),
     {"success", "editedSequence", "deletedCount", "spaceReclaimedBytes", "newMessageCount",
      "needsRegenerationFrom", "warning"}),
    ("sse token", rest.SseToken(token="a", partial="a"), {"token", "partial"}),
    ("sse complete", rest.SseComplete(message_count=2, response="r"),
     {"messageCount", "response"}),
    ("sse error", rest.SseError(message="m", code="AI_ERROR"), {"message", "code"}),
    ("error body", rest.ErrorBody(error="e"), {"error"}),
]  # fmt: skip


@pytest.mark.parametrize(("what", "payload", "keys"), WIRE, ids=[w[0] for w in WIRE])
def test_wire_names(what: str, payload: msgspec.Struct, keys: set[str]) -> None:
    assert _keys(payload) == keys


def test_nulls_are_sent_not_omitted() -> None:
    built = msgspec.to_builtins(se.StatePayload(**STATE))
    assert built["title"] is None and built["merkleRoot"] is None
    assert msgspec.to_builtins(se.OkAck(success=False)) == {"success": False}


def test_event_names_are_the_protocol_names() -> None:
    assert {str(e) for e in ClientEvent} == {
        "join-conversation", "leave-conversation", "send-message", "edit-message",
        "stop-generation", "ping",
    }  # fmt: skip
    assert {str(e) for e in ServerEvent} == {
        "state", "user-joined", "user-left", "typing-start", "ai-token", "ai-complete",
        "ai-error", "message-added", "conversation-truncated", "needs-regeneration", "error",
        "pong", "member-added", "conversation-added", "conversation-updated",
    }  # fmt: skip


# ── exports ─────────────────────────────────────────────────────────────────

MODULES = sorted(
    f"protocol.{m.name}" for m in pkgutil.iter_modules(protocol.__path__) if not m.ispkg
)


def test_every_protocol_module_is_checked() -> None:
    assert {"protocol.decode", "protocol.rest", "protocol.schema_docs"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_every_public_definition(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported))
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what does not exist: {missing}"
    tree = ast.parse(Path(typing.cast(str, module.__file__)).read_text(encoding="utf-8"))
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }
    aliases = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and typing.get_origin(getattr(module, _target_name(node), None)) is typing.Annotated
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    public = {n for n in defined | aliases if not n.startswith("_")}
    assert public <= set(exported), f"{name}.__all__ lacks {sorted(public - set(exported))}"


def _target_name(node: ast.Assign) -> str:
    target = node.targets[0]
    return target.id if isinstance(target, ast.Name) else ""


# ── the committed documents ─────────────────────────────────────────────────

STALE = "docs/{} is stale: run `.venv/bin/python scripts/export_protocol_docs.py` and commit it"


@pytest.mark.parametrize(
    ("file", "build"), [("asyncapi.json", asyncapi_document), ("openapi.json", openapi_document)]
)
def test_committed_documents_are_current(file: str, build: Any) -> None:
    path = DOCS / file
    assert path.exists(), STALE.format(file)
    assert render_json(build()) == path.read_bytes(), STALE.format(file)


def test_render_json_is_stable() -> None:
    doc = {"b": [1, {"z": 1, "a": "é"}], "a": None}
    out = render_json(doc)
    assert out == b'{\n  "a": null,\n  "b": [\n    1,\n    {\n      "a": "\xc3\xa9",\n' \
        b'      "z": 1\n    }\n  ]\n}\n'
    assert render_json(asyncapi_document()) == render_json(asyncapi_document())


def test_documents_share_no_state_between_calls() -> None:
    first = openapi_document()
    first["paths"] = {}
    typing.cast(dict[str, Any], asyncapi_document()["components"])["schemas"].clear()
    assert openapi_document()["paths"]
    assert typing.cast(dict[str, Any], asyncapi_document()["components"])["schemas"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(doc: Any, ref: str) -> Any:
    """The node a local `$ref` points to, following a chain of references."""
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    if isinstance(node, dict) and set(node) == {"$ref"}:
        return _resolve(doc, node["$ref"])
    return node


@pytest.mark.parametrize("build", [asyncapi_document, openapi_document])
def test_every_ref_resolves(build: Any) -> None:
    doc = build()
    refs = _refs(doc)
    assert refs
    for ref in refs:
        _resolve(doc, ref)


def _schema_names(module: Any) -> set[str]:
    return {
        n for n in module.__all__
        if isinstance(getattr(module, n), type) and issubclass(getattr(module, n), msgspec.Struct)
    }  # fmt: skip


def test_openapi_structure() -> None:
    doc: dict[str, Any] = openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    components = doc["components"]
    assert _schema_names(rest) <= set(components["schemas"])
    assert all(r.startswith("#/components/") for r in _refs(doc))
    assert components["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    }  # fmt: skip
    assert doc["security"] == [{"bearerAuth": []}, {"cookieAuth": [], "csrfToken": []}]
    assert components["securitySchemes"]["cookieAuth"]["in"] == "cookie"
    assert components["securitySchemes"]["cookieAuth"]["name"] == "scca_session"
    assert components["securitySchemes"]["csrfToken"]["name"] == "X-CSRF-Token"
    expected = {
        ("post", "/api/auth/register"): 201, ("post", "/api/auth/login"): 200,
        ("post", "/api/auth/logout"): 204, ("get", "/api/auth/me"): 200,
        ("post", "/api/auth/password"): 204, ("get", "/api/conversations"): 200,
        ("post", "/api/conversations"): 201, ("get", "/api/conversations/{id}"): 200,
        ("patch", "/api/conversations/{id}"): 200, ("delete", "/api/conversations/{id}"): 200,
        ("post", "/api/conversations/{id}/messages"): 200,
        ("patch", "/api/conversations/{id}/edit"): 200, ("get", "/api/health"): 200,
        ("get", "/api/openapi.json"): 200, ("get", "/api/asyncapi.json"): 200,
        ("get", "/api/conversations/{id}/export"): 200,
        ("post", "/api/conversations/{id}/verify"): 200,
        ("post", "/api/conversations/{id}/rotate-key"): 200,
        ("get", "/api/account/export"): 200, ("delete", "/api/account"): 204,
        ("get", "/api/profile"): 200, ("patch", "/api/profile"): 200,
        ("get", "/api/users/{userId}"): 200, ("post", "/api/users/lookup"): 200,
        ("post", "/api/conversations/direct"): 201, ("post", "/api/conversations/group"): 201,
        ("post", "/api/conversations/{id}/participants"): 201,
        ("get", "/api/messages/{conversationId}"): 200, ("post", "/api/messages"): 201,
    }  # fmt: skip
    found = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert found == set(expected)
    operation_ids = set()
    for (method, path), status in expected.items():
        operation = doc["paths"][path][method]
        operation_ids.add(operation["operationId"])
        assert str(status) in operation["responses"], (method, path)
        public = path in {
            "/api/auth/register",
            "/api/auth/login",
            "/api/health",
            "/api/openapi.json",
            "/api/asyncapi.json",
        }
        assert (operation.get("security") == []) is public, (method, path)
        if not public:
            assert "401" in operation["responses"], (method, path)
        templated = set(re.findall(r"{(\w+)}", path))
        declared = {
            _resolve(doc, p["$ref"])["name"]
            for p in operation.get("parameters", [])
            if _resolve(doc, p["$ref"])["in"] == "path"
        }
        assert templated == declared, (method, path)
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")) and not path.endswith("health"):
                body = _resolve(doc, response["$ref"])["content"]["application/json"]
                assert body["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert len(operation_ids) == len(expected)


def test_openapi_error_statuses() -> None:
    doc: dict[str, Any] = openapi_document()
    responses = doc["components"]["responses"]
    statuses = {400, 401, 404, 409, 413, 422, 429, 500, 502, 503}
    used = {
        int(code)
        for ops in doc["paths"].values() for op in ops.values() for code in op["responses"]
    }  # fmt: skip
    assert statuses <= used
    for response in responses.values():
        example = response["content"]["application/json"]["example"]
        body = msgspec.convert(example, rest.ErrorBody)
        assert body.code in set(ErrorCode)
    assert "Retry-After" in responses["RateLimited"]["headers"]
    login = doc["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"400", "401", "429"} <= set(login)
    register = doc["paths"]["/api/auth/register"]["post"]["responses"]
    assert {"409", "429"} <= set(register)
    send = doc["paths"]["/api/conversations/{id}/messages"]["post"]["responses"]
    assert {"409", "502"} <= set(send)
    health = doc["paths"]["/api/health"]["get"]["responses"]
    for code in ("200", "503"):
        schema = health[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Health"}


def test_openapi_parameters_and_sse() -> None:
    doc: dict[str, Any] = openapi_document()
    params = doc["components"]["parameters"]
    assert params["limit"]["schema"] == {
        "type": "integer", "minimum": 1, "maximum": 100, "default": 20,
    }  # fmt: skip
    assert params["offset"]["schema"]["minimum"] == 0
    listing = doc["paths"]["/api/conversations"]["get"]["parameters"]
    assert {_resolve(doc, p["$ref"])["name"] for p in listing} == {"limit", "offset"}
    detail = doc["paths"]["/api/conversations/{id}"]["get"]["parameters"]
    assert {_resolve(doc, p["$ref"])["name"] for p in detail} == {"id", "from", "to"}
    ok = doc["paths"]["/api/conversations/{id}/messages"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/SendResponse")
    sse = ok["content"]["text/event-stream"]
    assert {k: v["$ref"].rsplit("/", 1)[1] for k, v in sse["x-sse-events"].items()} == {
        "start": "SseStart", "token": "SseToken", "complete": "SseComplete", "error": "SseError",
    }  # fmt: skip
    for name in ("SseStart", "SseToken", "SseComplete", "SseError"):
        assert name in doc["components"]["schemas"]
    for block in sse["example"].strip().split("\n\n"):
        event, data = block.split("\n")
        struct: dict[str, type[msgspec.Struct]] = {
            "start": rest.SseStart, "token": rest.SseToken, "complete": rest.SseComplete,
        }  # fmt: skip
        decode.decode_json(data.removeprefix("data: ").encode(), struct[event[7:]])


def test_asyncapi_structure() -> None:
    doc: dict[str, Any] = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    server = doc["servers"]["local"]
    assert server["pathname"] == "/api/socket"
    assert _schema_names(se) | {"HandshakeAuth", "ErrorCode"} <= set(doc["components"]["schemas"])
    auth = doc["components"]["schemas"]["HandshakeAuth"]
    assert set(auth["properties"]) == {"token", "partial"} and auth["required"] == ["token"]
    addresses = {c["address"] for c in doc["channels"].values()} - {None}
    assert addresses == {str(e) for e in ClientEvent} | {str(e) for e in ServerEvent}
    enum = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert enum == [str(code) for code in ErrorCode]
    actions: dict[str, str] = {}
    for operation in doc["operations"].values():
        channel = _resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
        actions[channel["address"]] = operation["action"]
        if operation["action"] == "receive":
            reply = operation["reply"]
            assert _resolve(doc, reply["channel"]["$ref"])["address"] is None
            payloads = {_resolve(doc, m["$ref"])["payload"]["$ref"] for m in reply["messages"]}
            assert "#/components/schemas/ErrorAck" in payloads and len(payloads) == 2
    assert actions == {str(e): "receive" for e in ClientEvent} | {
        str(e): "send" for e in ServerEvent
    }


ACKS = {
    "join-conversation": se.JoinAck,
    "leave-conversation": se.OkAck,
    "send-message": se.SendAck,
    "edit-message": se.EditAck,
    "stop-generation": se.StopAck,
    "ping": se.PingAck,
}
CLIENT_DECODERS = {
    "join-conversation": decode.decode_join,
    "leave-conversation": decode.decode_join,
    "send-message": decode.decode_send,
    "edit-message": decode.decode_edit,
    "stop-generation": decode.decode_stop,
}


def _payload_struct(doc: dict[str, Any], message: dict[str, Any]) -> type[msgspec.Struct]:
    name = message["payload"]["$ref"].rsplit("/", 1)[1]
    struct = getattr(se, name)
    assert isinstance(struct, type) and issubclass(struct, msgspec.Struct)
    return struct


def test_asyncapi_examples_are_valid_payloads() -> None:
    """Client examples pass their decoders; server and ack examples are their Structs."""
    doc: dict[str, Any] = asyncapi_document()
    messages = doc["components"]["messages"]
    seen_client = set()
    for message in messages.values():
        name = message["name"]
        if name in CLIENT_DECODERS:
            seen_client.add(name)
            assert message["examples"]
            for example in message["examples"]:
                CLIENT_DECODERS[name](example["payload"])
            continue
        if "payload" not in message:
            assert name == "ping"
            continue
        struct = _payload_struct(doc, message)
        if name.endswith(" ack"):
            assert struct is ACKS[name.removesuffix(" ack")]
        for example in message["examples"]:
            value = msgspec.convert(example["payload"], struct, strict=True)
            assert msgspec.to_builtins(value) == example["payload"]
    assert seen_client == set(CLIENT_DECODERS)


def test_asyncapi_documents_the_seed_client_examples() -> None:
    doc: dict[str, Any] = asyncapi_document()
    examples = {
        m["name"]: [e["payload"] for e in m.get("examples", [])]
        for m in doc["components"]["messages"].values()
    }
    assert any(isinstance(p, str) for p in examples["join-conversation"])
    assert any(isinstance(p, dict) and "lastSeq" in p for p in examples["join-conversation"])
    assert any("clientMsgId" not in p for p in examples["send-message"])
    assert any("clientMsgId" in p for p in examples["send-message"])
    assert None in examples["stop-generation"]


# ── the prose document ──────────────────────────────────────────────────────


def test_protocol_md_covers_every_event_and_code() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    for name in [*map(str, ClientEvent), *map(str, ServerEvent), *map(str, ErrorCode)]:
        assert f"`{name}`" in text, f"docs/protocol.md does not mention `{name}`"
    assert "/api/socket" in text and "auth.token" in text
