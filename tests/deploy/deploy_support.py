"""What the deployment tests do over and over: accounts, conversations, tabs, reading back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instances import http_json, instance_env
from machine_services import redis_url
from node_client import NodeClient, NodeClients, resumed_text
from pg import TempDatabase
from polling import eventually

__all__ = [
    "Account",
    "cluster_envs",
    "conversation",
    "create_conversation",
    "eventually",
    "redis_url",
    "register",
    "resumed_text",
    "tab",
    "unique_channel",
]

PASSWORD = "correct horse battery"


def unique_channel() -> str:
    return f"scca-deploy-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, slots=True)
class Account:
    """A registered user: its id and bearer token."""

    user_id: str
    token: str


async def register(base_url: str) -> Account:
    email = f"deploy-{uuid.uuid4().hex[:12]}@example.com"
    status, body = await http_json(
        "POST", base_url + "/api/auth/register", body={"email": email, "password": PASSWORD}
    )
    assert status == 201, body
    return Account(user_id=str(body["user"]["id"]), token=str(body["token"]))


async def create_conversation(base_url: str, account: Account, **fields: Any) -> str:
    status, body = await http_json(
        "POST", base_url + "/api/conversations", token=account.token, body=fields
    )
    assert status == 201, body
    return str(body["id"])


async def conversation(base_url: str, account: Account, conversation_id: str) -> dict[str, Any]:
    """`GET /api/conversations/{id}`: messages decrypted, integrity verified."""
    status, body = await http_json(
        "GET", f"{base_url}/api/conversations/{conversation_id}", token=account.token
    )
    assert status == 200, body
    return dict(body)


async def tab(
    node: NodeClients,
    url: str,
    account: Account,
    conversation_id: str,
    **connect: Any,
) -> NodeClient:
    """A connected socket that has joined `conversation_id`."""
    return await node.joined(url, account.token, conversation_id, **connect)


def cluster_envs(
    db: TempDatabase, tmp_path: Path, count: int, *, redis: str | None = None, **extra: str
) -> list[dict[str, str]]:
    """`count` environments sharing database, Redis channel and secret."""
    channel = unique_channel()
    return [
        instance_env(
            app_dsn=db.app_dsn,
            data_dir=tmp_path / f"data{i + 1}",
            redis_url=redis or redis_url(),
            redis_channel=channel,
            **extra,
        )
        for i in range(count)
    ]
