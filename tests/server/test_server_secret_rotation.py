"""Rotating SECRET_KEY during a rolling deploy, as the README describes: instances on
either side of the swap share Redis and sessions, and nobody notices until the old
secret is dropped.

Phase 1 every instance accepts the new secret (EXTRA_SECRET_KEYS); phase 2 some seal
with the new one and accept the old; phase 3 the old one is gone.
"""

from __future__ import annotations

import uuid

from live_server import live_server, test_settings
from machine_services import redis_url
from node_client import NodeClients
from pg import TempDatabase

from server.config import Settings

OLD = "old-secret-key-that-is-long-enough-0123456789"
NEW = "new-secret-key-that-is-long-enough-9876543210"


async def test_a_rolling_secret_rotation_keeps_sessions_and_pub_sub_working(
    server_db: TempDatabase, node: NodeClients
) -> None:
    channel = f"scca-rotation-{uuid.uuid4().hex[:8]}"

    def settings(secret: str, extra: str = "") -> Settings:
        return test_settings(
            server_db.app_dsn,
            SECRET_KEY=secret,
            EXTRA_SECRET_KEYS=extra,
            REDIS_URL=redis_url(),
            REDIS_CHANNEL=channel,
        )

    async with live_server(settings(OLD, NEW)) as before:  # phase 1: accepts the new one
        account = await before.register()
        old_token = account["token"]
        conversation_id = await before.create_conversation(old_token, title="kept")

        async with live_server(settings(NEW, OLD)) as after:  # phase 2: seals with it
            # A session opened under the old secret works on the new instance...
            status, body = await after.call(
                "GET", f"/api/conversations/{conversation_id}", token=old_token
            )
            assert status == 200 and body["title"] == "kept", body
            # ...and one opened there works on the old instance.
            status, body = await after.call(
                "POST",
                "/api/auth/login",
                json={"email": account["user"]["email"], "password": "correct horse battery"},
            )
            assert status == 200, body
            new_token = body["token"]
            status, body = await before.call("GET", "/api/conversations", token=new_token)
            assert status == 200, body

            # Sockets on both sides hear each other through Redis.
            tab_before = await node.joined(before.base_url, old_token, conversation_id)
            tab_after = await node.joined(after.base_url, new_token, conversation_id)
            [ack] = await tab_after.emit("send-message", {"content": "sealed with the new"})
            assert ack["success"] is True, ack
            await tab_before.wait_for(
                "message-added", lambda d: d["content"] == "sealed with the new"
            )
            [ack] = await tab_before.emit("send-message", {"content": "sealed with the old"})
            assert ack["success"] is True, ack
            await tab_after.wait_for(
                "message-added", lambda d: d["content"] == "sealed with the old"
            )

    async with live_server(settings(NEW)) as done:  # phase 3: the old secret is gone
        status, body = await done.call("GET", "/api/conversations", token=old_token)
        assert status == 401, body
        status, body = await done.call(
            "GET", f"/api/conversations/{conversation_id}", token=new_token
        )
        assert status == 200 and body["messageCount"] == 4, body
