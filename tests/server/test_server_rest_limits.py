"""REST sends and edits count against the same per-user budget as socket events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase

WINDOW_S = 60  # the limiter's fixed window


@pytest_asyncio.fixture
async def limited(server_db: TempDatabase) -> AsyncIterator[LiveServer]:
    settings = test_settings(
        server_db.app_dsn, RATE_SENDS_PER_MIN="3", RATE_EDITS_PER_MIN="2", SCRIPTED_DELAY_MS="0"
    )
    async with live_server(settings) as live:
        yield live


async def _inside_one_window(needed_s: float) -> int:
    """The counting below must not straddle two windows: start in a fresh one if the
    current one is about to end."""
    left = WINDOW_S - time.time() % WINDOW_S
    if left < needed_s:
        await asyncio.sleep(left + 0.05)
    return int(time.time() // WINDOW_S)


async def test_rest_and_socket_sends_share_one_budget(
    limited: LiveServer, node: NodeClients
) -> None:
    account = await limited.register()
    token = account["token"]
    conversation_id = await limited.create_conversation(token)
    tab = await node.connect(limited.base_url, token=token)
    [joined] = await tab.emit("join-conversation", conversation_id)
    assert joined["success"] is True
    window = await _inside_one_window(needed_s=15)

    for content in ("one", "two"):
        [ack] = await tab.emit("send-message", {"content": content})
        assert ack["success"] is True, ack
    path = f"/api/conversations/{conversation_id}/messages"
    status, body = await limited.call(
        "POST", path, token=token, json={"content": "three", "stream": False}
    )
    assert status == 200, body
    status, body, headers = await limited.call_with_headers(
        "POST", path, token=token, json={"content": "four", "stream": False}
    )
    assert status == 429 and body["code"] == "RATE_LIMITED", body
    assert 0 < body["retryAfter"] <= WINDOW_S and int(headers["Retry-After"]) >= 1
    [refused] = await tab.emit("send-message", {"content": "five"})
    assert refused["success"] is False and refused["code"] == "RATE_LIMITED"
    assert int(time.time() // WINDOW_S) == window, "the phase spanned two windows"
    status, detail = await limited.call("GET", f"/api/conversations/{conversation_id}", token=token)
    assert status == 200 and detail["messageCount"] == 6  # three questions, three replies
    await limited.close_socket(tab)


async def test_rest_edits_are_limited_too(limited: LiveServer) -> None:
    account = await limited.register()
    token = account["token"]
    conversation_id = await limited.create_conversation(token)
    path = f"/api/conversations/{conversation_id}/messages"
    question = {"content": "q", "stream": False}
    status, _ = await limited.call("POST", path, token=token, json=question)
    assert status == 200
    await _inside_one_window(needed_s=15)
    edit = f"/api/conversations/{conversation_id}/edit"
    for attempt in range(2):
        status, body = await limited.call(
            "PATCH", edit, token=token, json={"sequence": 1, "newContent": f"q{attempt}"}
        )
        assert status == 200, body
    status, body = await limited.call(
        "PATCH", edit, token=token, json={"sequence": 1, "newContent": "again"}
    )
    assert status == 429 and body["code"] == "RATE_LIMITED", body


async def test_creates_rotations_and_exports_have_budgets_of_their_own(
    server_db: TempDatabase,
) -> None:
    settings = test_settings(
        server_db.app_dsn,
        RATE_CREATES_PER_MIN="2",
        RATE_KEY_ROTATIONS_PER_MIN="1",
        RATE_EXPORTS_PER_MIN="2",
    )
    async with live_server(settings) as live:
        account = await live.register()
        token = account["token"]
        await _inside_one_window(needed_s=15)
        first = await live.create_conversation(token)
        await live.create_conversation(token)
        base = f"/api/conversations/{first}"
        calls = [
            ("POST", "/api/conversations", {"title": "third"}, "create"),
            ("POST", base + "/rotate-key", None, "rotate-key"),
            ("POST", base + "/rotate-key", None, "rotate-key"),
            ("GET", base + "/export", None, "export"),
            ("POST", base + "/verify", None, "export"),  # as costly as an export
            ("GET", "/api/account/export", None, "export"),
        ]
        answers = []
        for method, path, body, _ in calls:
            status, answer, headers = await live.call_with_headers(
                method, path, token=token, json=body
            )
            answers.append((status, answer, headers.get("Retry-After")))
        refused = {i for i, (status, _, _) in enumerate(answers) if status == 429}
        assert refused == {0, 2, 5}, answers
        for i in refused:
            _, answer, retry_after = answers[i]
            assert answer["error"] == f"Too many {calls[i][3]} events; slow down", answer
            assert retry_after is not None and 1 <= int(retry_after) <= WINDOW_S
        # Another user has budgets of their own.
        other = await live.register()
        await live.create_conversation(other["token"])
