"""Small local servers that speak OpenAI's and Anthropic's streaming wire formats.

Point the real SDKs at `server.base_url` (an `async with` block starts the server on
127.0.0.1 and a free port). Behaviour is scripted by a `FakeBehaviour`, which tests may
also change between requests through `server.behaviour`. The server records every request
body and header (`requests`) and whether a client went away before its stream ended
(`disconnected`, `disconnects`). One server can be shared by many tests: `reset()` gives
it a new behaviour and forgets what it recorded.

    async with FakeOpenAIServer(tokens=["Hel", "lo"]) as server:
        client = openai.AsyncOpenAI(api_key="k", base_url=server.base_url)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = [
    "FakeAnthropicServer",
    "FakeBehaviour",
    "FakeOpenAIServer",
    "RecordedRequest",
    "collect",
]


async def collect(stream: AsyncIterator[str]) -> tuple[list[str], Exception | None]:
    """Every delta of `stream`, and the exception that ended it (None if it ended normally)."""
    deltas: list[str] = []
    try:
        async for delta in stream:
            deltas.append(delta)
    except Exception as exc:
        return deltas, exc
    return deltas, None


@dataclass(frozen=True)
class FakeBehaviour:
    """What the fake server does with each request.

    - `tokens`, sent one event each, `token_delay_s` before each one;
    - `fail_first`: the first N requests get HTTP `fail_status` (with `retry_after` as the
      Retry-After header when not None) instead of a stream;
    - `error_after`: after that many tokens, an in-stream error event of `error_type`;
    - `cut_after`: after that many tokens, the TCP connection is aborted;
    - `stall_after`: after that many tokens the server goes silent (connection kept open);
    - `finish_reason`: the provider's finish/stop reason (None = the provider's normal one);
    - `empty_deltas`: also send events that carry no text (empty/null deltas, no choices);
    - `require_api_key`: answer 401 unless the request carries this key.
    """

    tokens: tuple[str, ...] = ("Hello", ",", " world", "!")
    token_delay_s: float = 0.0
    fail_first: int = 0
    fail_status: int = 429
    retry_after: str | None = "0"
    error_after: int | None = None
    error_type: str | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    finish_reason: str | None = None
    empty_deltas: bool = True
    require_api_key: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server received (header names in lower case)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    api_key: str | None
    """The key the client sent, however this API carries it."""


class _Cut(Exception):
    """The script cut the connection on purpose."""


@dataclass
class _Outcome:
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnects: int = 0
    completed: int = 0


def _behaviour(base: FakeBehaviour | None, changes: dict[str, Any]) -> FakeBehaviour:
    if "tokens" in changes:
        changes["tokens"] = tuple(changes["tokens"])
    return replace(base or FakeBehaviour(), **changes)


class _FakeServer:
    path = "/"

    def __init__(self, behaviour: FakeBehaviour | None = None, **changes: Any) -> None:
        self.behaviour = _behaviour(behaviour, changes)
        self.requests: list[RecordedRequest] = []
        self._outcome = _Outcome()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def reset(self, behaviour: FakeBehaviour | None = None, **changes: Any) -> None:
        """Start over as a new server on the same port: `behaviour` (default FakeBehaviour())
        with `changes`, no recorded requests, and fresh `disconnected`, `disconnects` and
        `completed` (a stream still running from before reports to the old ones)."""
        self.behaviour = _behaviour(behaviour, changes)
        self.requests = []
        self._outcome = _Outcome()

    @property
    def base_url(self) -> str:
        """The URL to give the SDK's `base_url`."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def disconnected(self) -> asyncio.Event:
        """Set when a client goes away before its stream has ended."""
        return self._outcome.disconnected

    @property
    def disconnects(self) -> int:
        """How many streams lost their client before their end."""
        return self._outcome.disconnects

    @property
    def completed(self) -> int:
        """How many streams were sent to their end."""
        return self._outcome.completed

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _api_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def _error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    async def _send_stream(
        self, request: web.Request, response: web.StreamResponse, body: dict[str, Any]
    ) -> bool:
        """Write the scripted stream; True when it was sent to its normal end."""
        raise NotImplementedError

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        outcome = self._outcome  # a reset() while this request runs does not see its end
        body = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        api_key = self._api_key(request)
        self.requests.append(RecordedRequest(request.path, headers, body, api_key))
        behaviour = self.behaviour
        if behaviour.require_api_key is not None and api_key != behaviour.require_api_key:
            return web.json_response(self._error_body(401), status=401)
        if len(self.requests) <= behaviour.fail_first:
            headers = {"x-request-id": "req_fake"}
            if behaviour.retry_after is not None:
                headers["retry-after"] = behaviour.retry_after
            return web.json_response(
                self._error_body(behaviour.fail_status),
                status=behaviour.fail_status,
                headers=headers,
            )
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        try:
            if await self._send_stream(request, response, body):
                outcome.completed += 1
        except _Cut:
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            outcome.disconnects += 1
            outcome.disconnected.set()
            raise
        return response

    async def _token_gate(self, request: web.Request, index: int) -> bool:
        """Apply the delay and the cut/stall rules before token `index`; False = stop here."""
        behaviour = self.behaviour
        if behaviour.cut_after is not None and index == behaviour.cut_after:
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise _Cut
        if behaviour.stall_after is not None and index == behaviour.stall_after:
            await asyncio.sleep(3600)
        if behaviour.token_delay_s:
            await asyncio.sleep(behaviour.token_delay_s)
        return not (behaviour.error_after is not None and index == behaviour.error_after)


class FakeOpenAIServer(_FakeServer):
    """Speaks `POST /v1/chat/completions` with `stream: true` (server-sent `data:` lines)."""

    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def _error_body(self, status: int) -> dict[str, Any]:
        kinds = {
            401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
            429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
            400: ("invalid_request_error", None, "Invalid request."),
        }
        kind, code, message = kinds.get(status, ("server_error", None, "The server had an error."))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    async def _send_stream(
        self, request: web.Request, response: web.StreamResponse, body: dict[str, Any]
    ) -> bool:
        behaviour = self.behaviour
        model = str(body.get("model", "gpt-4o-mini"))
        created = int(time.time())

        async def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

        await chunk({"role": "assistant", "content": "", "refusal": None})
        for index, token in enumerate(behaviour.tokens):
            if not await self._token_gate(request, index):
                error = {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": behaviour.error_type or "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                await response.write_eof()
                return False
            await chunk({"content": token})
            if behaviour.empty_deltas:
                await chunk({})
                await chunk({"content": None})
        await chunk({}, behaviour.finish_reason or "stop")
        if behaviour.empty_deltas:
            usage = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
            }
            await response.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return True


class FakeAnthropicServer(_FakeServer):
    """Speaks `POST /v1/messages` with `stream: true` (named server-sent events)."""

    path = "/v1/messages"

    def _api_key(self, request: web.Request) -> str | None:
        # The API takes `x-api-key`; newer SDKs send the key as a bearer token instead.
        return request.headers.get("x-api-key") or super()._api_key(request)

    def _error_body(self, status: int) -> dict[str, Any]:
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        kind = kinds.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": kind.replace("_", " ")}}

    async def _send_stream(
        self, request: web.Request, response: web.StreamResponse, body: dict[str, Any]
    ) -> bool:
        behaviour = self.behaviour
        model = str(body.get("model", "claude-3-5-sonnet-latest"))

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 25, "output_tokens": 1},
                },
            },
        )
        await event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await event("ping", {"type": "ping"})
        for index, token in enumerate(behaviour.tokens):
            if not await self._token_gate(request, index):
                error = {
                    "type": "error",
                    "error": {
                        "type": behaviour.error_type or "overloaded_error",
                        "message": "Overloaded",
                    },
                }
                await event("error", error)
                await response.write_eof()
                return False
            delta = {"type": "text_delta", "text": token}
            await event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
            if behaviour.empty_deltas:
                empty = {"type": "text_delta", "text": ""}
                await event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": empty},
                )
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": behaviour.finish_reason or "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": len(behaviour.tokens)},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return True
