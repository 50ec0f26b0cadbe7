"""Storage benchmark: append cost against conversation length, edit cost, bytes on disk.

Run: ``.venv/bin/python bench/storage_bench.py [--quick]``. Needs the local
PostgreSQL (or ``TEST_DATABASE_URL``); works in a throwaway database. The
last line printed is one JSON object with the figures.

Every append is the chat service's transaction: ``user_tx``, lock the
conversation row, insert the message, move the head. Conversations are
pre-filled in bulk to 10, 1,000 and 10,000 messages, then appends are timed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
TOKEN_BYTES = 350  # a ~300-character message once encrypted and framed
LINK_BYTES = 32
PLAINTEXT_BYTES = 300
LENGTHS = (10, 1_000, 10_000)


def _import_path() -> None:
    for path in (_ROOT / "tests" / "support", _ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def _link(prev: bytes | None, token: bytes) -> bytes:
    return hashlib.sha256((prev or b"") + token).digest()


@dataclass(frozen=True, slots=True)
class _Message:
    role: int
    token: bytes
    link: bytes
    client_msg_id: str | None


def _message(seq: int, prev: bytes | None) -> _Message:
    """A realistic message: user turns carry a client id, assistant turns do not."""
    token = os.urandom(TOKEN_BYTES)
    role = 0 if seq % 2 else 1
    client_msg_id = str(uuid.uuid4()) if role == 0 else None
    return _Message(role, token, _link(prev, token), client_msg_id)


async def _new_conversation(pool: Any, user_id: uuid.UUID) -> uuid.UUID:
    from storage import create_conversation, user_tx

    conversation_id = uuid.uuid4()
    async with user_tx(pool, user_id) as con:
        await create_conversation(
            con,
            conversation_id=conversation_id,
            user_id=user_id,
            sealed_title=None,
            model="bench-model",
            wrapped_key=os.urandom(60),
        )
    return conversation_id


async def _bulk_fill(pool: Any, user_id: uuid.UUID, conversation_id: uuid.UUID, n: int) -> None:
    """Insert messages 1..n in one transaction (executemany), then set the head."""
    from storage import set_head, user_tx

    rows: list[tuple[object, ...]] = []
    link: bytes | None = None
    for seq in range(1, n + 1):
        message = _message(seq, link)
        link = message.link
        rows.append(
            (
                conversation_id,
                user_id,
                seq,
                message.role,
                message.token,
                link,
                message.client_msg_id,
            )
        )
    async with user_tx(pool, user_id) as con:
        await con.executemany(
            "INSERT INTO messages"
            " (conversation_id, user_id, seq, role, token, link, client_msg_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows,
        )
        await set_head(con, conversation_id, message_count=n, merkle_root=link)


async def _append(pool: Any, user_id: uuid.UUID, conversation_id: uuid.UUID) -> float:
    """One append transaction; returns its wall time in milliseconds."""
    from storage import get_conversation, insert_message, set_head, user_tx

    start = time.perf_counter()
    async with user_tx(pool, user_id) as con:
        head = await get_conversation(con, conversation_id, for_update=True)
        assert head is not None
        seq = head.message_count + 1
        message = _message(seq, head.merkle_root)
        await insert_message(
            con,
            conversation_id=conversation_id,
            user_id=user_id,
            seq=seq,
            role=message.role,
            token=message.token,
            link=message.link,
            client_msg_id=message.client_msg_id,
        )
        await set_head(con, conversation_id, message_count=seq, merkle_root=message.link)
    return (time.perf_counter() - start) * 1000


async def _edit_first(pool: Any, user_id: uuid.UUID, conversation_id: uuid.UUID) -> float:
    """Edit message 1: truncate everything after it, replace it, move the head (ms)."""
    from storage import delete_after, get_conversation, replace_message, set_head, user_tx

    token = os.urandom(TOKEN_BYTES)
    link = _link(None, token)
    start = time.perf_counter()
    async with user_tx(pool, user_id) as con:
        head = await get_conversation(con, conversation_id, for_update=True)
        assert head is not None
        await delete_after(con, conversation_id, 1)
        await replace_message(con, conversation_id, 1, token=token, link=link)
        await set_head(con, conversation_id, message_count=1, merkle_root=link)
    return (time.perf_counter() - start) * 1000


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def _bench(quick: bool) -> dict[str, float]:
    _import_path()
    import asyncpg  # type: ignore[import-untyped,unused-ignore]
    from pg import temporary_database

    from storage import create_pool, insert_user, user_tx

    appends = 200 if quick else 1_000
    edits = 1 if quick else 5
    figures: dict[str, float] = {}
    async with temporary_database() as db:
        # One connection: the figures are the storage path, not pool contention.
        pool = await create_pool(db.app_dsn, min_size=1, max_size=1)
        admin = await asyncpg.connect(db.admin_dsn)
        try:
            user_id = uuid.uuid4()
            async with user_tx(pool, user_id) as con:
                await insert_user(
                    con,
                    user_id=user_id,
                    email="bench@example.test",
                    password_hash="x",
                    kek_salt=os.urandom(16),
                    wrapped_data_key=os.urandom(60),
                )
            warm = await _new_conversation(pool, user_id)
            for _ in range(50):
                await _append(pool, user_id, warm)

            medians: dict[int, float] = {}
            for length in LENGTHS:
                conversation_id = await _new_conversation(pool, user_id)
                await _bulk_fill(pool, user_id, conversation_id, length)
                await admin.execute("VACUUM ANALYZE messages, conversations")
                samples = [await _append(pool, user_id, conversation_id) for _ in range(appends)]
                medians[length] = statistics.median(samples)
                figures[f"append_p50_ms_{_label(length)}"] = medians[length]
                figures[f"append_p99_ms_{_label(length)}"] = _p99(samples)

            rows = await admin.fetchval("SELECT count(*) FROM messages")
            total = await admin.fetchval("SELECT pg_total_relation_size('messages')")
            heap = await admin.fetchval("SELECT pg_relation_size('messages')")
            figures["bytes_per_message"] = total / rows
            figures["heap_bytes_per_message"] = heap / rows

            edit_samples = []
            for _ in range(edits):
                conversation_id = await _new_conversation(pool, user_id)
                await _bulk_fill(pool, user_id, conversation_id, LENGTHS[-1])
                await admin.execute("VACUUM ANALYZE messages")
                edit_samples.append(await _edit_first(pool, user_id, conversation_id))
            figures["edit_ms_10k"] = statistics.median(edit_samples)
        finally:
            await admin.close()
            await pool.close()
    figures["append_ratio_10k_over_10"] = medians[LENGTHS[-1]] / medians[LENGTHS[0]]
    figures["plaintext_bytes_per_message"] = float(PLAINTEXT_BYTES)
    return figures


def _label(length: int) -> str:
    return {10: "10", 1_000: "1k", 10_000: "10k"}[length]


def run(quick: bool) -> dict[str, float]:
    """Run the benchmark in a temporary database; return the figures."""
    return asyncio.run(_bench(quick))


def _print_table(figures: dict[str, float]) -> None:
    print(f"{'length':>8} {'append p50 ms':>14} {'append p99 ms':>14}")
    for length in LENGTHS:
        label = _label(length)
        print(
            f"{length:>8} {figures[f'append_p50_ms_{label}']:>14.3f}"
            f" {figures[f'append_p99_ms_{label}']:>14.3f}"
        )
    print(f"append p50 ratio 10,000 / 10: {figures['append_ratio_10k_over_10']:.2f} (target < 1.5)")
    print(f"edit at seq 1 of 10,000 messages: {figures['edit_ms_10k']:.2f} ms (target < 20)")
    print(
        f"stored bytes per message (heap + TOAST + indexes): {figures['bytes_per_message']:.0f}"
        f" (heap alone {figures['heap_bytes_per_message']:.0f});"
        f" plaintext {PLAINTEXT_BYTES}, token {TOKEN_BYTES}, link {LINK_BYTES}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples (under a minute)")
    args = parser.parse_args()
    figures = run(args.quick)
    _print_table(figures)
    keys = (
        "append_p50_ms_10",
        "append_p50_ms_1k",
        "append_p50_ms_10k",
        "append_p99_ms_10k",
        "append_ratio_10k_over_10",
        "edit_ms_10k",
        "bytes_per_message",
    )
    print(json.dumps({key: round(figures[key], 3) for key in keys}))


if __name__ == "__main__":
    main()
