"""Micro-benchmark of the crypto package: token pack/unpack, HKDF and Argon2id costs.

Run: ``.venv/bin/python bench/crypto_bench.py [--quick]``. Prints a table and, as the last
line, one JSON object. ``run(quick)`` returns the same figures for a driver script.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

_ROOT = Path(__file__).resolve().parent.parent
_VOCABULARY = (
    "the conversation model answer question because server message token user assistant "
    "system would could should about their there which these other people time year way "
    "day thing world life hand part child eye woman place work week case point government "
    "company number group problem fact encrypt stream socket redis postgres latency through "
    "between important different following without however another example 42 2024 3.14"
)


def _crypto() -> ModuleType:
    """Import the package from this checkout even when run as a plain script."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import crypto

    return crypto


def _text(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    vocabulary = _VOCABULARY.split()
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(vocabulary)
        if rng.random() < 0.08:
            word = word.capitalize() + rng.choice([".", ",", "?", "!"])
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars]


def _per_op_us(action: Callable[[int], object], batch: int, batches: int) -> float:
    """Median over ``batches`` of the mean time of one call in a batch, in microseconds."""
    for i in range(batch):  # warm up
        action(i)
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for i in range(batch):
            action(i)
        samples.append((time.perf_counter_ns() - start) / batch / 1_000)
    return statistics.median(samples)


def _median_ms(action: Callable[[], object], runs: int) -> float:
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        action()
        samples.append((time.perf_counter_ns() - start) / 1_000_000)
    return statistics.median(samples)


def run(quick: bool) -> dict[str, float]:
    """Measure and return the figures (keys as in the JSON line printed by ``main``)."""
    c = _crypto()
    batch, batches, slow_runs = (100, 15, 3) if quick else (500, 41, 9)
    conversation = uuid.uuid4()
    keys = c.derive_conversation_keys(c.new_key(), conversation, 1)
    results: dict[str, float] = {}
    for label, chars in (("", 300), ("_4k", 4_000)):
        texts = [_text(chars, seed) for seed in range(16)]
        tokens = [c.pack(keys, conversation, i + 1, c.Role.USER, t) for i, t in enumerate(texts)]

        def pack_one(i: int, texts: list[str] = texts) -> object:
            return c.pack(keys, conversation, i + 1, c.Role.ASSISTANT, texts[i & 15])

        def unpack_one(i: int, tokens: list[bytes] = tokens) -> object:
            return c.unpack(keys, conversation, tokens[i & 15])

        results[f"pack{label}_us"] = _per_op_us(pack_one, batch, batches)
        results[f"unpack{label}_us"] = _per_op_us(unpack_one, batch, batches)

    root = c.new_key()
    results["hkdf_us"] = _per_op_us(
        lambda i: c.derive_conversation_keys(root, conversation, i), batch, batches
    )
    hasher = c.PasswordHasher()
    hashed = hasher.hash("correct horse battery staple")
    results["argon2_verify_ms"] = _median_ms(
        lambda: hasher.verify(hashed, "correct horse battery staple"), slow_runs
    )
    # A login for an unknown address: as slow as a real check (tests/crypto asserts why).
    results["argon2_dummy_verify_ms"] = _median_ms(
        lambda: hasher.dummy_verify("correct horse battery staple"), slow_runs
    )
    results["argon2_dummy_over_real"] = (
        results["argon2_dummy_verify_ms"] / results["argon2_verify_ms"]
    )
    salt = c.new_salt()
    results["kek_ms"] = _median_ms(lambda: c.derive_kek("correct horse battery staple", salt),
                                   slow_runs)
    return {key: round(value, 3) for key, value in results.items()}


_ROWS = [
    ("pack_us", "pack, 300 chars", "us"),
    ("unpack_us", "unpack, 300 chars", "us"),
    ("pack_4k_us", "pack, 4,000 chars", "us"),
    ("unpack_4k_us", "unpack, 4,000 chars", "us"),
    ("hkdf_us", "derive_conversation_keys", "us"),
    ("argon2_verify_ms", "PasswordHasher.verify (Argon2id)", "ms"),
    ("argon2_dummy_verify_ms", "PasswordHasher.dummy_verify (unknown account)", "ms"),
    ("argon2_dummy_over_real", "dummy_verify / verify", "x"),
    ("kek_ms", "derive_kek (Argon2id raw)", "ms"),
]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print a table, then the JSON figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke test")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick)
    width = max(len(title) for _, title, _ in _ROWS)
    print(f"{'operation':<{width}}  {'median':>10}")
    for key, title, unit in _ROWS:
        print(f"{title:<{width}}  {figures[key]:>8.2f} {unit}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
