"""Fixtures of the deployment tests: server processes, the machine's Redis, nginx.

Each test gets its own instances (real `run.py` processes) on free ports, a Redis
channel of its own, and the session's temporary database (`server_db`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from deploy_support import cluster_envs
from instances import Instance, running_instances
from nginx_proxy import Nginx, running_nginx
from pg import TempDatabase
from redis_proc import own_redis


@pytest_asyncio.fixture
async def pair(server_db: TempDatabase, tmp_path: Path) -> AsyncIterator[list[Instance]]:
    """Two instances on the machine's Redis."""
    async with running_instances(cluster_envs(server_db, tmp_path, 2), tmp_path / "logs") as apps:
        yield apps


@pytest_asyncio.fixture
async def balanced(
    server_db: TempDatabase, tmp_path: Path
) -> AsyncIterator[tuple[Nginx, list[Instance]]]:
    """nginx, configured by deploy/nginx.conf, in front of two instances.

    They use a Redis of their own: the rate-limit counters live in Redis under keys no
    channel separates (`conn:<ip>`), and hundreds of connections from 127.0.0.1 must
    not count against other tests. For the same reason the per-address connection
    limit is raised: every test client (and, behind nginx, every client) has one address.
    """
    async with own_redis() as redis:
        envs = cluster_envs(
            server_db, tmp_path, 2, redis=redis.url, RATE_CONNECTS_PER_MIN_PER_IP="100000"
        )
        async with (
            running_instances(envs, tmp_path / "logs") as apps,
            running_nginx([app.address for app in apps]) as nginx,
        ):
            yield nginx, apps
