"""What sealing the pub/sub channel costs: per message, and through a real Redis.

Run: ``.venv/bin/python bench/pubsub_seal.py [--quick]``. Prints a table and, as the last
line, one JSON object. ``run(quick)`` returns the same figures for bench/run.py.

Each message crosses Redis once per publish, whatever the number of sockets, and is
opened once by each receiving instance: sealing adds one AES-GCM seal per emit and one
open per instance, never per recipient. Measured against python-socketio's own codec
(the standard library's `json`), for the messages that dominate: an `ai-token` with a
1 KB `partial`, and a `message-added`.

- ``*_codec_us``: encode + decode of one message, in this process (no I/O);
- ``*_redis_cpu_us``: CPU time of this process per message published through the
  machine's Redis (``TEST_REDIS_URL``, default redis://127.0.0.1:6379/0) and received by
  a subscriber in the same process: the cost of the whole pub/sub path of one publisher
  and one receiving instance, of which the codec is a part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import redis.asyncio as redis_asyncio  # noqa: E402

from crypto import ChannelSeal  # noqa: E402
from server.service.sealed_channel import SealedChannel  # noqa: E402

__all__ = ["run"]


class _StdlibCodec:
    """python-socketio's default: `json.dumps` / `json.loads`."""

    @staticmethod
    def dumps(obj: Any) -> str:
        return json.dumps(obj)

    @staticmethod
    def loads(raw: bytes | str) -> Any:
        return json.loads(raw)


def _messages() -> dict[str, dict[str, Any]]:
    room = f"conv:{uuid.uuid4()}"
    partial = ("The quick brown fox jumps over the lazy dog. " * 23)[:1024]
    return {
        "ai_token": {
            "method": "emit",
            "event": "ai-token",
            "data": [{"token": " dog.", "partial": partial, "tokenIndex": 230, "sequence": 8}],
            "namespace": "/",
            "room": room + "#partial",
            "skip_sid": None,
            "callback": None,
            "host_id": uuid.uuid4().hex,
        },
        "message_added": {
            "method": "emit",
            "event": "message-added",
            "data": [
                {
                    "sequence": 7,
                    "role": "user",
                    "content": "Could you summarise the design in three bullet points?",
                    "timestamp": "2026-12-02T13:00:00.000Z",
                }
            ],
            "namespace": "/",
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": uuid.uuid4().hex,
        },
    }


def _sealed(channel: str) -> SealedChannel:
    seal = ChannelSeal(os.urandom(32), purpose=b"socketio")
    return SealedChannel(seal, channel, on_reject=lambda reason: None)


def _codec_us(codec: Any, message: dict[str, Any], count: int) -> float:
    """Encode + decode per message; a fresh sealed codec per round keeps replays out."""
    encoded = [codec.dumps(message) for _ in range(count)]
    start = time.perf_counter()
    for _ in range(count):
        codec.dumps(message)
    for raw in encoded:
        codec.loads(raw)
    return (time.perf_counter() - start) / count * 1e6


async def _redis_cpu_us(codec: Any, message: dict[str, Any], count: int, channel: str) -> float:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    publisher = redis_asyncio.Redis.from_url(url)
    listener = redis_asyncio.Redis.from_url(url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    received = 0
    done = asyncio.Event()

    async def listen() -> None:
        nonlocal received
        async for item in pubsub.listen():
            codec.loads(item["data"])
            received += 1
            if received == count:
                done.set()
                return

    task = asyncio.create_task(listen())
    start = time.process_time()
    try:
        for _ in range(count):
            await publisher.publish(channel, codec.dumps(message))
        async with asyncio.timeout(60):
            await done.wait()
        return (time.process_time() - start) / count * 1e6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await publisher.aclose()
        await listener.aclose()


def _best(measure: Callable[[], float], rounds: int) -> float:
    return min(measure() for _ in range(rounds))


def run(quick: bool = False) -> dict[str, Any]:
    count = 1_000 if quick else 10_000
    rounds = 3 if quick else 5
    figures: dict[str, Any] = {}
    for name, message in _messages().items():
        channel = f"bench-seal-{uuid.uuid4().hex[:8]}"
        plain = _best(lambda: _codec_us(_StdlibCodec(), message, count), rounds)  # noqa: B023
        sealed = _best(lambda: _codec_us(_sealed(channel), message, count), rounds)  # noqa: B023
        figures[f"pubsub_{name}_plain_codec_us"] = round(plain, 2)
        figures[f"pubsub_{name}_sealed_codec_us"] = round(sealed, 2)
        plain_path = min(
            asyncio.run(_redis_cpu_us(_StdlibCodec(), message, count, channel))
            for _ in range(rounds)
        )
        sealed_path = min(
            asyncio.run(_redis_cpu_us(_sealed(channel), message, count, channel))
            for _ in range(rounds)
        )
        figures[f"pubsub_{name}_plain_redis_cpu_us"] = round(plain_path, 1)
        figures[f"pubsub_{name}_sealed_redis_cpu_us"] = round(sealed_path, 1)
        figures[f"pubsub_{name}_sealed_ratio"] = round(sealed_path / plain_path, 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick)
    for key, value in figures.items():
        print(f"{key:<44} {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
