"""Replies through the real OpenAI and Anthropic SDKs, end to end.

A live server is configured the way an operator would (OPENAI_BASE_URL/OPENAI_API_KEY,
ANTHROPIC_BASE_URL/ANTHROPIC_API_KEY, MODEL_PROVIDERS, DEFAULT_MODEL) and pointed at the
local servers of tests/support/fake_llm.py, which speak each provider's streaming wire
format; the clients are the real Node socket.io-client and plain HTTP. Covered: a reply
streamed over Socket.IO, REST JSON and REST Server-Sent Events for each provider and for
models routed by MODEL_PROVIDERS; and each provider failure the fakes can produce mapped
to its socket code (ack and the room's `ai-error`) and its REST code and status, with the
user's message kept and the conversation still usable afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from fake_llm import FakeAnthropicServer, FakeOpenAIServer
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClient, NodeClients
from pg import TempDatabase

from ai.exceptions import AIError, AIProviderError, AIRateLimited, AITimeout, AIUnavailable
from protocol.names import ErrorCode
from server.service.exceptions import GenerationFailed

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
KEYS = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}
SYSTEM_PROMPT = "Answer briefly."
DEFAULT_MODEL = "claude-3-5-haiku-latest"
# `llama` would reach OpenAI anyway (OPENAI_BASE_URL serves any name); `house-` would too
# without its route, and `claude-proxy` would go to Anthropic by its name.
MODEL_PROVIDERS = "llama:openai,house-:anthropic,claude-proxy:openai"
# Several multi-byte characters, so a token cut or re-encoded anywhere shows.
TOKENS = ("Hé", "llo", ", wörld", " 🙂", "!")
REPLY = "".join(TOKENS)
PROMPT = "Say hello, briefly"
FOLLOW_UP = "And once more"
AI_STATUS = 502  # REST status of every provider failure (GenerationFailed)
LIMITS = {
    "RATE_SENDS_PER_MIN": "100000",
    "RATE_JOINS_PER_MIN": "100000",
    "RATE_EVENTS_PER_MIN": "100000",
    "RATE_CREATES_PER_MIN": "100000",
}

Fake = FakeOpenAIServer | FakeAnthropicServer


@dataclass
class Rig:
    """A live server wired to both fakes, and one account on it."""

    server: LiveServer
    fakes: dict[str, Fake]
    token: str

    async def conversation(self, model: str | None) -> str:
        fields = {} if model is None else {"model": model}
        status, body = await self.server.call(
            "POST", "/api/conversations", token=self.token, json=fields
        )
        assert status == 201, body
        assert body["model"] == (model or DEFAULT_MODEL)
        return str(body["id"])

    async def stored(self, conversation_id: str) -> dict[str, Any]:
        status, body = await self.server.call(
            "GET", f"/api/conversations/{conversation_id}", token=self.token
        )
        assert status == 200, body
        assert body["integrity"]["valid"] is True, body
        body["messages"] = [(m["sequence"], m["role"], m["content"]) for m in body["messages"]]
        return dict(body)

    async def send_json(self, conversation_id: str, content: str) -> tuple[int, Any]:
        return await self.server.call(
            "POST",
            f"/api/conversations/{conversation_id}/messages",
            token=self.token,
            json={"content": content, "stream": False},
        )

    async def send_sse(self, conversation_id: str, content: str) -> list[tuple[str, Any]]:
        async with self.server.http.post(
            f"{self.server.base_url}/api/conversations/{conversation_id}/messages",
            json={"content": content, "stream": True},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "text/event-stream"
            text = await response.text()
        assert "Traceback" not in text, text
        return parse_sse(text)


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event, decoded data) of each event of a text/event-stream body, comments dropped."""
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def expected_request(provider: str, model: str, *user_turns: str) -> dict[str, Any]:
    """What the provider must have received: the model, and the conversation shaped the
    way its API takes it (OpenAI: a system message; Anthropic: a `system` field and one
    user turn for consecutive user messages)."""
    if provider == "openai":
        return {
            "model": model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}]
            + [{"role": "user", "content": turn} for turn in user_turns],
        }
    return {
        "model": model,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": "\n\n".join(user_turns)}],
    }


def assert_requests(rig: Rig, provider: str, model: str, count: int, *turns: str) -> None:
    """`count` requests reached `provider` (none the other), each the expected one."""
    fake = rig.fakes[provider]
    other = rig.fakes["anthropic" if provider == "openai" else "openai"]
    assert other.requests == []
    assert len(fake.requests) == count
    expected = expected_request(provider, model, *turns)
    for request in fake.requests:
        assert request.api_key == KEYS[provider]
        assert request.body["stream"] is True
        assert {name: request.body.get(name) for name in expected} == expected


# ── fixtures ────────────────────────────────────────────────────────────────


@pytest_asyncio.fixture(scope="module")
async def fakes() -> AsyncIterator[dict[str, Fake]]:
    async with FakeOpenAIServer() as openai_fake, FakeAnthropicServer() as anthropic_fake:
        yield {"openai": openai_fake, "anthropic": anthropic_fake}


@pytest.fixture(autouse=True)
def fresh_fakes(fakes: dict[str, Fake]) -> None:
    """Before each test: the normal reply, the configured key required, nothing recorded."""
    for provider, fake in fakes.items():
        fake.reset(tokens=TOKENS, require_api_key=KEYS[provider])


async def _rig(db: TempDatabase, fakes: dict[str, Fake], **env: str) -> AsyncIterator[Rig]:
    settings = test_settings(
        db.app_dsn,
        OPENAI_BASE_URL=fakes["openai"].base_url,
        OPENAI_API_KEY=OPENAI_KEY,
        ANTHROPIC_BASE_URL=fakes["anthropic"].base_url,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        MODEL_PROVIDERS=MODEL_PROVIDERS,
        DEFAULT_MODEL=DEFAULT_MODEL,
        SYSTEM_PROMPT=SYSTEM_PROMPT,
        **LIMITS,
        **env,
    )
    async with live_server(settings) as server:
        account = await server.register()
        yield Rig(server=server, fakes=fakes, token=account["token"])


@pytest_asyncio.fixture(scope="module")
async def rig(server_db: TempDatabase, fakes: dict[str, Fake]) -> AsyncIterator[Rig]:
    """The server with the default AI timeouts."""
    async for made in _rig(server_db, fakes):
        yield made


@pytest_asyncio.fixture(scope="module")
async def quick_rig(server_db: TempDatabase, fakes: dict[str, Fake]) -> AsyncIterator[Rig]:
    """The server with the shortest AI timeout (1 s), for provider timeouts."""
    async for made in _rig(server_db, fakes, AI_TIMEOUT_S="1"):
        yield made


@pytest_asyncio.fixture
async def sockets(node: NodeClients) -> AsyncIterator[list[NodeClient]]:
    """Sockets opened by a test, disconnected after it."""
    opened: list[NodeClient] = []
    yield opened
    for client in opened:
        await client.disconnect()


async def joined(rig: Rig, node: NodeClients, sockets: list[NodeClient], cid: str) -> NodeClient:
    client = await node.joined(rig.server.base_url, rig.token, cid, transports=["websocket"])
    sockets.append(client)
    return client


# ── replies ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    explicit: bool = True
    """False: the conversation is created without a model and gets DEFAULT_MODEL."""


ROUTES = {
    "openai": Route("openai", "gpt-4o-mini"),
    "anthropic-default-model": Route("anthropic", DEFAULT_MODEL, explicit=False),
    "llama-to-openai": Route("openai", "llama3.1:8b"),
    "house-to-anthropic": Route("anthropic", "house-sonnet"),
    "claude-proxy-to-openai": Route("openai", "claude-proxy-3"),
}


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
async def test_socket_reply_streams_through_the_sdk(
    rig: Rig, node: NodeClients, sockets: list[NodeClient], route: Route
) -> None:
    cid = await rig.conversation(route.model if route.explicit else None)
    client = await joined(rig, node, sockets, cid)

    [ack] = await client.emit("send-message", {"content": PROMPT})

    assert ack == {"success": True, "messageCount": 2, "sequence": 2}
    complete = await client.wait_for("ai-complete")
    assert complete.data["sequence"] == 2
    assert complete.data["messageCount"] == 2
    assert complete.data["content"] == REPLY
    assert "stopped" not in complete.data
    tokens = [e.data for e in client.named("ai-token")]
    assert [t["token"] for t in tokens] == list(TOKENS)
    assert [t["tokenIndex"] for t in tokens] == list(range(1, len(TOKENS) + 1))
    assert [t["partial"] for t in tokens] == ["".join(TOKENS[: i + 1]) for i in range(len(TOKENS))]
    assert {t["sequence"] for t in tokens} == {2}
    assert client.named("ai-error") == [] and client.named("error") == []
    stored = await rig.stored(cid)
    assert stored["messageCount"] == 2
    assert stored["messages"] == [(1, "user", PROMPT), (2, "assistant", REPLY)]
    assert_requests(rig, route.provider, route.model, 1, PROMPT)
    assert rig.fakes[route.provider].completed == 1


@pytest.mark.parametrize("mode", ["json", "sse"])
@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
async def test_rest_reply_streams_through_the_sdk(rig: Rig, route: Route, mode: str) -> None:
    cid = await rig.conversation(route.model if route.explicit else None)

    if mode == "json":
        status, body = await rig.send_json(cid, PROMPT)
        assert (status, body) == (200, {"response": REPLY, "messageCount": 2, "sequence": 2})
    else:
        events = await rig.send_sse(cid, PROMPT)
        assert events == [
            ("start", {"sequence": 2, "userSequence": 1}),
            *(
                ("token", {"token": token, "partial": "".join(TOKENS[: i + 1])})
                for i, token in enumerate(TOKENS)
            ),
            ("complete", {"messageCount": 2, "response": REPLY}),
        ]

    stored = await rig.stored(cid)
    assert stored["messageCount"] == 2
    assert stored["messages"] == [(1, "user", PROMPT), (2, "assistant", REPLY)]
    assert_requests(rig, route.provider, route.model, 1, PROMPT)
    assert rig.fakes[route.provider].completed == 1


# ── provider failures ───────────────────────────────────────────────────────


@dataclass(frozen=True)
class Failure:
    provider: str
    behaviour: dict[str, Any]
    error: type[AIError]
    """The AIError the failure must become; its `code` is what clients see."""
    retried: bool = False
    """Retried before the first token (max_retries more requests), as rate limits and
    unavailability are."""
    streamed: int = 0
    """Tokens the room saw before the failure."""
    timeout: bool = False
    """Needs the 1 s timeout server; the fake must see the server drop the stalled stream."""
    models: dict[str, str] = field(
        default_factory=lambda: {"openai": "gpt-4o-mini", "anthropic": DEFAULT_MODEL}
    )

    @property
    def model(self) -> str:
        return self.models[self.provider]


# Expected codes, from ai/exceptions.py (_classify_status, from_transport_error) and
# ai/streaming.py (timeouts, retries), checked against the protocol's names below.
FAILURES = {
    "openai-401": Failure("openai", {"require_api_key": "sk-someone-else"}, AIProviderError),
    "anthropic-401": Failure(
        "anthropic", {"require_api_key": "sk-ant-someone-else"}, AIProviderError
    ),
    "openai-429": Failure(
        "openai", {"fail_first": 99, "fail_status": 429}, AIRateLimited, retried=True
    ),
    "anthropic-429": Failure(
        "anthropic", {"fail_first": 99, "fail_status": 429}, AIRateLimited, retried=True
    ),
    "openai-500": Failure(
        "openai", {"fail_first": 99, "fail_status": 500}, AIUnavailable, retried=True
    ),
    "anthropic-500": Failure(
        "anthropic", {"fail_first": 99, "fail_status": 500}, AIUnavailable, retried=True
    ),
    "anthropic-529-overloaded": Failure(
        "anthropic", {"fail_first": 99, "fail_status": 529}, AIUnavailable, retried=True
    ),
    "openai-midstream-server-error": Failure(
        "openai", {"error_after": 2, "error_type": "server_error"}, AIUnavailable, streamed=2
    ),
    "openai-midstream-invalid-request": Failure(
        "openai",
        {"error_after": 2, "error_type": "invalid_request_error"},
        AIProviderError,
        streamed=2,
    ),
    "anthropic-midstream-overloaded": Failure(
        "anthropic",
        {"error_after": 2, "error_type": "overloaded_error"},
        AIUnavailable,
        streamed=2,
    ),
    "anthropic-midstream-rate-limit": Failure(
        "anthropic",
        {"error_after": 2, "error_type": "rate_limit_error"},
        AIRateLimited,
        streamed=2,
    ),
    "anthropic-midstream-invalid-request": Failure(
        "anthropic",
        {"error_after": 2, "error_type": "invalid_request_error"},
        AIProviderError,
        streamed=2,
    ),
    "openai-dropped-connection": Failure("openai", {"cut_after": 2}, AIUnavailable, streamed=2),
    "anthropic-dropped-connection": Failure(
        "anthropic", {"cut_after": 2}, AIUnavailable, streamed=2
    ),
    "openai-silent-mid-stream": Failure(
        "openai", {"stall_after": 2}, AITimeout, streamed=2, timeout=True
    ),
    "anthropic-silent-mid-stream": Failure(
        "anthropic", {"stall_after": 2}, AITimeout, streamed=2, timeout=True
    ),
    "openai-silent-before-first-token": Failure(
        "openai", {"stall_after": 0}, AITimeout, timeout=True
    ),
    "llama-to-openai-429": Failure(
        "openai",
        {"fail_first": 99, "fail_status": 429},
        AIRateLimited,
        retried=True,
        models={"openai": "llama3.1:8b"},
    ),
}

PROTOCOL_CODES = {
    AIProviderError: ErrorCode.AI_ERROR,
    AIRateLimited: ErrorCode.AI_RATE_LIMITED,
    AIUnavailable: ErrorCode.AI_UNAVAILABLE,
    AITimeout: ErrorCode.AI_TIMEOUT,
}


def test_ai_codes_are_the_protocol_codes() -> None:
    """The codes this module expects are the documented ones, and REST says 502."""
    assert {cls: cls.code for cls in PROTOCOL_CODES} == {
        AIProviderError: "AI_ERROR",
        AIRateLimited: "AI_RATE_LIMITED",
        AIUnavailable: "AI_UNAVAILABLE",
        AITimeout: "AI_TIMEOUT",
    }
    assert all(cls.code == str(code) for cls, code in PROTOCOL_CODES.items())
    assert GenerationFailed.status == AI_STATUS


def assert_room_saw_the_failure(client: NodeClient, code: str, message: str, streamed: int) -> None:
    """The reply's first `streamed` tokens, then one `ai-error` with the send's code and
    message, and no `ai-complete`."""
    tokens = [e.data for e in client.named("ai-token")]
    assert [t["token"] for t in tokens] == list(TOKENS[:streamed])
    assert [t["partial"] for t in tokens] == ["".join(TOKENS[: i + 1]) for i in range(streamed)]
    assert [e.data for e in client.named("ai-error")] == [
        {"sequence": 2, "code": code, "message": message}
    ]
    assert client.named("ai-complete") == []


@pytest.mark.parametrize("transport", ["socket", "rest-json", "rest-sse"])
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_provider_failure_is_reported_and_keeps_the_users_message(
    rig: Rig,
    quick_rig: Rig,
    node: NodeClients,
    sockets: list[NodeClient],
    failure: Failure,
    transport: str,
) -> None:
    used = quick_rig if failure.timeout else rig
    fake = used.fakes[failure.provider]
    fake.reset(fake.behaviour, **failure.behaviour)
    code = str(PROTOCOL_CODES[failure.error])
    cid = await used.conversation(failure.model)

    # A second tab in the room sees the failure whatever transport the send came from.
    room = await joined(used, node, sockets, cid)

    if transport == "socket":
        client = await joined(used, node, sockets, cid)
        [ack] = await client.emit("send-message", {"content": PROMPT})
        assert ack == {"success": False, "code": code, "error": ack.get("error")}
        message = ack["error"]
        seed_error = await client.wait_for("error")
        assert seed_error.data["code"] == ErrorCode.SEND_FAILED
        await client.wait_for("ai-error")
        assert_room_saw_the_failure(client, code, message, failure.streamed)
    elif transport == "rest-json":
        status, body = await used.send_json(cid, PROMPT)
        assert (status, body) == (AI_STATUS, {"error": body.get("error"), "code": code})
        message = body["error"]
    else:
        events = await used.send_sse(cid, PROMPT)
        assert events == [
            ("start", {"sequence": 2, "userSequence": 1}),
            *(
                ("token", {"token": token, "partial": "".join(TOKENS[: i + 1])})
                for i, token in enumerate(TOKENS[: failure.streamed])
            ),
            ("error", {"message": events[-1][1].get("message"), "code": code}),
        ]
        message = events[-1][1]["message"]
    await room.wait_for("ai-error")
    assert_room_saw_the_failure(room, code, message, failure.streamed)
    assert room.named("error") == []  # the seed's `error` event is the sender's alone
    assert isinstance(message, str) and message
    assert OPENAI_KEY not in message and ANTHROPIC_KEY not in message

    attempts = used.server.settings.ai.max_retries + 1 if failure.retried else 1
    assert_requests(used, failure.provider, failure.model, attempts, PROMPT)
    assert fake.completed == 0
    if failure.timeout:  # the server hung up on the silent stream
        await asyncio.wait_for(fake.disconnected.wait(), 5)
    stored = await used.stored(cid)
    assert stored["messageCount"] == 1
    assert stored["messages"] == [(1, "user", PROMPT)]

    # The lock is released and the kept message is part of the next reply's context.
    fake.reset(tokens=TOKENS, require_api_key=KEYS[failure.provider])
    status, body = await used.send_json(cid, FOLLOW_UP)
    assert (status, body) == (200, {"response": REPLY, "messageCount": 3, "sequence": 3})
    assert_requests(used, failure.provider, failure.model, 1, PROMPT, FOLLOW_UP)
    stored = await used.stored(cid)
    assert stored["messages"] == [
        (1, "user", PROMPT),
        (2, "user", FOLLOW_UP),
        (3, "assistant", REPLY),
    ]
