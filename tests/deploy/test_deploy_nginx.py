"""nginx (deploy/nginx.conf) in front of two instances: sticky long-polling, WebSockets, load."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from deploy_support import (
    Account,
    conversation,
    create_conversation,
    eventually,
    register,
    tab,
)
from instances import Instance
from nginx_proxy import Nginx
from node_client import NodeClient, NodeClients

T = TypeVar("T")
USERS = 20
CONVERSATIONS_PER_USER = 10  # each with one long-polling and one WebSocket tab: 20 sockets


async def _bounded(limit: int, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await `jobs` with at most `limit` running at once, results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def _pair_of_tabs(
    node: NodeClients, url: str, account: Account, conversation_id: str
) -> tuple[NodeClient, NodeClient]:
    polling = await tab(
        node, url, account, conversation_id,
        transports=["polling"], options={"withCredentials": True}, timeout=30,
    )  # fmt: skip
    websocket = await tab(
        node, url, account, conversation_id, transports=["websocket"], timeout=30
    )
    return polling, websocket


async def _both_send(polling: NodeClient, websocket: NodeClient) -> None:
    """The seed flow for each tab: send, get the ack, and see both replies complete."""
    [first] = await polling.emit("send-message", {"content": "from the polling tab"}, timeout=45)
    assert first == {"success": True, "messageCount": 2, "sequence": 2}, first
    [second] = await websocket.emit(
        "send-message", {"content": "from the websocket tab"}, timeout=45
    )
    assert second == {"success": True, "messageCount": 4, "sequence": 4}, second
    for client in (polling, websocket):
        await client.wait_for("ai-complete", lambda d: d["sequence"] == 4, timeout=45)


async def test_400_sockets_through_nginx_complete_the_seed_flow(
    balanced: tuple[Nginx, list[Instance]], node: NodeClients
) -> None:
    proxied, pair = balanced
    started = time.monotonic()
    accounts = [await register(proxied.base_url) for _ in range(USERS)]
    owned = list(itertools.product(accounts, range(CONVERSATIONS_PER_USER)))
    conversation_ids = await _bounded(
        20, [create_conversation(proxied.base_url, account) for account, _ in owned]
    )
    pairs = await _bounded(
        50,
        [
            _pair_of_tabs(node, proxied.base_url, account, cid)
            for (account, _), cid in zip(owned, conversation_ids, strict=True)
        ],
    )
    clients = [c for p in pairs for c in p]
    connected_at = time.monotonic()
    await asyncio.gather(*(_both_send(p, w) for p, w in pairs))
    finished = time.monotonic()

    assert len(clients) == 400
    assert [c for c in clients if c.connect_errors or c.disconnect_reason] == []
    assert Counter(c.transport for c in clients) == {"polling": 200, "websocket": 200}
    for client in clients:
        completes = [e.data for e in client.named("ai-complete")]
        assert [d["messageCount"] for d in completes] == [2, 4], completes
        assert not client.named("error")

    # Every request so far, before the clients go away (a long-poll cut short by its
    # client's close is no failure of the proxy).
    log = proxied.access_log()
    assert [line for line in log if line.status >= 400] == [], "no Invalid session, no 5xx"
    await asyncio.gather(*(c.disconnect() for c in clients))
    # nginx logs a WebSocket when it closes.
    websockets = await eventually(
        lambda: len(lines := [x for x in proxied.access_log() if x.status == 101]) == 200
        and lines,
        what="200 WebSocket requests in the access log",
    )
    upstreams_of_session: dict[str, set[str]] = defaultdict(set)
    for line in log:
        if line.sid not in ("", "-"):
            upstreams_of_session[line.sid].add(line.upstream)
    assert len(upstreams_of_session) == 200, "one session per long-polling tab"
    assert all(len(u) == 1 for u in upstreams_of_session.values()), "sticky sessions"
    addresses = {app.address for app in pair}
    polling_spread = Counter(next(iter(u)) for u in upstreams_of_session.values())
    websocket_spread = Counter(line.upstream for line in websockets)
    for spread in (polling_spread, websocket_spread):
        assert set(spread) == addresses and min(spread.values()) >= 60, spread

    sample = conversation_ids[7]
    owner = owned[7][0]
    body = await conversation(proxied.base_url, owner, sample)
    assert body["messageCount"] == 4 and body["integrity"]["valid"] is True
    print(
        f"\n400 sockets: set up in {connected_at - started:.1f}s, "
        f"800 sends completed in {finished - connected_at:.1f}s"
    )


async def test_without_the_cookie_long_polling_breaks_across_instances(
    balanced: tuple[Nginx, list[Instance]], node: NodeClients
) -> None:
    """The control experiment: the sticky cookie is what keeps a session on one instance."""
    proxied, _ = balanced
    account = await register(proxied.base_url)
    clients = await asyncio.gather(
        *(
            node.connect(proxied.base_url, token=account.token, transports=["polling"])
            for _ in range(10)
        )
    )
    # Each tab keeps polling: without the cookie, one of its requests soon reaches the
    # instance that does not know its session.
    await eventually(
        lambda: [c for c in clients if c.connect_errors or c.disconnect_reason],
        what="a long-polling session broken by landing on the other instance",
    )
    assert any(line.status == 400 for line in proxied.access_log())
    await asyncio.gather(*(c.disconnect() for c in clients))
