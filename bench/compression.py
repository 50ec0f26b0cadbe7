"""Compression before encryption: bytes saved on real chat text, and the length leak it opens.

Run: ``.venv/bin/python bench/compression.py [--quick] [--seeds DIR]``. Prints tables and,
as the last line, one JSON object. ``run(quick)`` returns the same figures for a driver
script (issue 19).

Part 1 packs realistic chat text with the project's own :func:`crypto.pack` (compression
on, as shipped: zlib when the UTF-8 text is over 64 bytes and deflating shrinks it) and
compares each token with the same text sealed without compression. ``pack`` has no switch,
so the uncompressed token is built here from the version-2 layout documented in
``crypto/tokens.py`` (header 11 | nonce 12 | AES-GCM(plaintext) + tag 16, flags 0) with the
conversation's own AES-GCM key; ``crypto.unpack`` opens it, and its size is checked to be
plaintext + 39 bytes. The text is offline and real:

- the prose of the design documents in ``/work/shared/seeds`` (markdown): sentences and
  list items become short human messages (5-200 characters), runs of consecutive
  sentences under one heading longer human messages (200-1000), and multi-paragraph
  chunks with their code blocks, markdown kept, AI replies (500-4000);
- docstrings of standard-library modules (``inspect.getdoc``), cut the same way, their
  doctest and indented examples fenced as code blocks in the AI-like chunks.

The CPU figures are what compression adds to a message as shipped: one zlib compression
attempt when the text is over 64 bytes (on write), one bounded inflate when it was kept (on
every read); pack+unpack is timed with and without compression for scale.

Part 2 is a CRIME-style experiment: an AI reply summarising a group thread contains one
member's 6-digit login code and, a few lines further, text another member (the attacker)
chose; the attacker sees only token lengths (a database reader) and places one guess per
message. Per digit it tries the ten digits, with varying padding to shift the deflate bit
alignment, until one guess gives the unique shortest total length.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import random
import re
import statistics
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_SEEDS = Path("/work/shared/seeds")

# The version-2 layout of crypto/tokens.py (module docstring): the header is
# version(1)=2 | flags(1) | role(1) | sequence(u32 BE) | timestamp(u32 BE).
_V2_HEADER = struct.Struct(">BBBII")
_NONCE_SIZE = 12
_TAG_SIZE = 16
OVERHEAD = _V2_HEADER.size + _NONCE_SIZE + _TAG_SIZE  # 39 bytes around the plaintext
# What tokens._seal does, mirrored to time the zlib work alone. run() checks, for every
# message, that this gives exactly the token size crypto.pack produced.
_COMPRESS_MIN_BYTES = 64
_COMPRESS_LEVEL = 6
_ZLIB_LOOKAHEAD = 262
_MAX_PLAIN_BYTES = 400_000

_CLASSES = (
    ("short_human", "short human (5-200 chars)", 5, 200),
    ("long_human", "longer human (200-1000 chars)", 200, 1000),
    ("ai_reply", "AI reply (500-4000 chars)", 500, 4000),
)
_STDLIB_MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "email.message", "enum", "fractions", "functools", "gettext", "glob",
    "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookies", "imaplib",
    "inspect", "ipaddress", "itertools", "json", "logging", "mailbox", "mimetypes",
    "multiprocessing.pool", "netrc", "numbers", "operator", "optparse", "os", "pathlib",
    "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shlex",
    "shutil", "smtplib", "socket", "sqlite3", "ssl", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "tomllib", "trace", "traceback",
    "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "weakref",
    "xml.dom.minidom", "zipfile",
)


def _crypto() -> ModuleType:
    """Import the package from this checkout even when run as a plain script."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import crypto

    return crypto


# --- the corpus ---------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_RULE = re.compile(r"^\s*([-*_=])\1{2,}\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*\*|__|`")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_BOX = re.compile(r"[\u2500-\u257f\u2190-\u21ff]")


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph of prose (markdown as written) or a fenced code block."""

    kind: str  # "prose", "code" or "heading"
    text: str


def _markdown_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    # One seed wraps its whole document in ```markdown ... ```: unwrap it.
    wrapper = [i for i, line in enumerate(lines) if line.strip() in ("```markdown", "```md")]
    if wrapper:
        closing = [i for i, line in enumerate(lines) if line.strip() == "```"]
        drop = {wrapper[0], closing[-1]} if closing else {wrapper[0]}
        lines = [line for i, line in enumerate(lines) if i not in drop]
    blocks: list[Block] = []
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(Block("prose", "\n".join(paragraph)))
            paragraph.clear()

    for line in lines:
        if code is not None:
            code.append(line)
            if _FENCE.match(line) and line.strip() in ("```", "~~~"):
                blocks.append(Block("code", "\n".join(code)))
                code = None
        elif _FENCE.match(line):
            flush()
            code = [line]
        elif _HEADING.match(line):
            flush()
            blocks.append(Block("heading", line.strip()))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.rstrip())
    flush()
    if code:
        blocks.append(Block("code", "\n".join([*code, "```"])))
    return blocks


def _docstring_blocks(doc: str) -> list[Block]:
    """Paragraphs of a docstring; doctests and indented examples become fenced code."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", doc.strip()):
        if not paragraph.strip():
            continue
        first = paragraph.lstrip("\n").splitlines()[0]
        if first.startswith((">>>", "    ", "\t")):
            blocks.append(Block("code", f"```python\n{paragraph}\n```"))
        else:
            blocks.append(Block("prose", paragraph))
    return blocks


def _human_line(line: str) -> str | None:
    """A markdown line as someone would type it in a chat box, or None if it is not prose."""
    stripped = line.strip()
    if (
        not stripped
        or stripped.startswith(("|", ">>>", "<", "{", "}"))
        or _RULE.match(stripped)
        or _BOX.search(stripped)
    ):
        return None
    text = _BULLET.sub("", stripped)
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text).strip()
    letters = sum(ch.isalpha() for ch in text)
    if len(text) < 5 or letters < 0.6 * len(text.replace(" ", "")) or " " not in text:
        return None
    return text


def _runs(blocks: Iterable[Block]) -> list[list[str]]:
    """Human-like sentences, in runs that end at each heading or code block."""
    runs: list[list[str]] = [[]]
    for block in blocks:
        if block.kind != "prose":
            runs.append([])
            continue
        lines = block.text.splitlines()
        if any(_BULLET.match(line) for line in lines):
            items = lines  # a list: each line on its own
        else:
            items = [" ".join(line.strip() for line in lines)]
        for item in items:
            text = _human_line(item)
            if text is not None:
                runs[-1].extend(s.strip() for s in _SENTENCE_END.split(text) if s.strip())
    return [run for run in runs if run]


def _short_messages(runs: list[list[str]]) -> list[str]:
    return [s for run in runs for s in run if 5 <= len(s) <= 200]


def _long_messages(runs: list[list[str]], rng: random.Random) -> list[str]:
    """Consecutive sentences under one heading, grouped to a random length in 200..1000."""
    out = []
    for run in runs:
        group: list[str] = []
        target = rng.randint(200, 1000)
        for sentence in run:
            size = len(" ".join([*group, sentence]))
            if group and size > 1000:
                text = " ".join(group)
                if len(text) >= 200:
                    out.append(text)
                group, target = [], rng.randint(200, 1000)
            group.append(sentence)
            text = " ".join(group)
            if len(text) >= target:
                if len(text) <= 1000:
                    out.append(text)
                group, target = [], rng.randint(200, 1000)
        text = " ".join(group)
        if 200 <= len(text) <= 1000:
            out.append(text)
    return out


def _pieces(block: Block, limit: int = 3000) -> list[str]:
    """A block as written, split by lines (code keeps its fences) if over ``limit``."""
    if len(block.text) <= limit:
        return [block.text]
    lines = block.text.splitlines()
    if block.kind == "code":
        head, body, tail = lines[0], lines[1:-1], "```"
    else:
        head, body, tail = "", lines, ""
    out: list[str] = []
    part: list[str] = []
    for line in body:
        if len(line) > limit - 20:
            continue
        if part and sum(len(x) + 1 for x in part) + len(line) + len(head) + len(tail) > limit:
            out.append("\n".join(x for x in (head, *part, tail) if x))
            part = []
        part.append(line)
    if part:
        out.append("\n".join(x for x in (head, *part, tail) if x))
    return out


def _ai_replies(blocks: list[Block], rng: random.Random) -> list[str]:
    """Consecutive blocks (prose, headings, code) joined to a random length in 500..4000."""
    out = []
    current: list[str] = []
    target = rng.randint(500, 4000)
    for block in blocks:
        for piece in _pieces(block):
            if current and len("\n\n".join([*current, piece])) > 4000:
                text = "\n\n".join(current)
                if len(text) >= 500:
                    out.append(text)
                current, target = [], rng.randint(500, 4000)
            current.append(piece)
            text = "\n\n".join(current)
            if len(text) >= target:
                out.append(text)
                current, target = [], rng.randint(500, 4000)
    text = "\n\n".join(current)
    if 500 <= len(text) <= 4000:
        out.append(text)
    return out


def _stdlib_docstrings() -> list[list[tuple[str, str]]]:
    """(name, docstring) of a fixed list of standard-library modules and their members.

    One list per module: the module, then its public classes, functions and methods.
    """
    seen: set[str] = set()
    modules: list[list[tuple[str, str]]] = []
    for name in _STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs: list[tuple[str, str]] = []

        def add(label: str, obj: object, docs: list[tuple[str, str]] = docs) -> None:
            doc = inspect.getdoc(obj)
            if doc and doc not in seen:
                seen.add(doc)
                docs.append((label, doc))

        add(name, module)
        for attr, member in sorted(vars(module).items()):
            if attr.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(member) or inspect.isfunction(member):
                add(f"{name}.{attr}", member)
            if inspect.isclass(member):
                for method_name, method in sorted(vars(member).items()):
                    if not method_name.startswith("_") and inspect.isfunction(method):
                        add(f"{name}.{attr}.{method_name}", method)
        modules.append(docs)
    return modules


def corpus(seeds: Path, rng_seed: int = 19) -> dict[str, dict[str, list[str]]]:
    """Messages by class ("short_human", ...) and source ("seeds", "stdlib")."""
    rng = random.Random(rng_seed)
    seed_documents = [
        _markdown_blocks(path.read_text(encoding="utf-8", errors="replace"))
        for path in sorted(seeds.glob("*"))
        if path.is_file()
    ]
    stdlib = _stdlib_docstrings()
    # Human messages: runs of sentences never cross a document or docstring. AI replies:
    # a seed document's blocks in order; a module's docstrings in order, each under a
    # heading naming it, as a reply explaining an API would be laid out.
    by_source: dict[str, tuple[list[list[Block]], list[list[Block]]]] = {
        "seeds": (seed_documents, seed_documents),
        "stdlib": (
            [_docstring_blocks(doc) for docs in stdlib for _, doc in docs],
            [
                [
                    block
                    for label, doc in docs
                    for block in (Block("heading", f"### `{label}`"), *_docstring_blocks(doc))
                ]
                for docs in stdlib
            ],
        ),
    }
    out: dict[str, dict[str, list[str]]] = {name: {} for name, *_ in _CLASSES}
    for source, (human_documents, ai_documents) in by_source.items():
        short: list[str] = []
        long: list[str] = []
        ai: list[str] = []
        for blocks in human_documents:
            runs = _runs(blocks)
            short += _short_messages(runs)
            long += _long_messages(runs, rng)
        for blocks in ai_documents:
            ai += _ai_replies(blocks, rng)
        for name, messages in (("short_human", short), ("long_human", long), ("ai_reply", ai)):
            _, _, low, high = next(c for c in _CLASSES if c[0] == name)
            unique = list(dict.fromkeys(m for m in messages if low <= len(m) <= high))
            out[name][source] = unique
    return out


# --- sealing --------------------------------------------------------------------------


def _pack_uncompressed(
    keys: Any, conversation_id: uuid.UUID, sequence: int, role: int, content: str,
    timestamp: int,
) -> bytes:
    """The version-2 token crypto.pack would write with compression off (flags 0)."""
    header = _V2_HEADER.pack(2, 0, role, sequence, timestamp)
    nonce = random.randbytes(_NONCE_SIZE)  # a benchmark: uniqueness is all that matters
    sealed: bytes = keys.aead.encrypt(nonce, content.encode("utf-8"),
                                      header + conversation_id.bytes)
    return header + nonce + sealed


def _deflate(data: bytes) -> bytes:
    """tokens._seal's compression call (level 6, a window just big enough)."""
    wbits = min(15, max(9, (len(data) + _ZLIB_LOOKAHEAD).bit_length()))
    return zlib.compress(data, _COMPRESS_LEVEL, wbits)


def _inflate(data: bytes) -> bytes:
    """tokens._inflate's bounded inflate."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_PLAIN_BYTES + 1)
    assert inflater.eof
    return out


def _compress_as_shipped(data: bytes) -> bytes | None:
    """The zlib work of crypto.pack: one attempt over 64 bytes; the result if it was kept."""
    if len(data) > _COMPRESS_MIN_BYTES:
        packed = _deflate(data)
        if len(packed) < len(data):
            return packed
    return None


def _per_message_us(action: Callable[[], object], count: int, repeats: int) -> float:
    """Median over ``repeats`` of the time of ``action`` (one pass over the messages) / count."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        action()
        samples.append((time.perf_counter_ns() - start) / count / 1_000)
    return statistics.median(samples)


def _measure(c: ModuleType, keys: Any, conversation: uuid.UUID, messages: list[str],
             role: Any, repeats: int) -> dict[str, Any]:
    stamp = datetime(2026, 12, 2, tzinfo=UTC)
    seconds = int(stamp.timestamp())
    plain: list[int] = []
    saved: list[int] = []
    shrank = attempted = 0
    tokens: list[bytes] = []
    for i, text in enumerate(messages):
        data = text.encode("utf-8")
        token = c.pack(keys, conversation, i + 1, role, text, stamp)
        off = _pack_uncompressed(keys, conversation, i + 1, int(role), text, seconds)
        assert len(off) == len(data) + OVERHEAD
        assert c.unpack(keys, conversation, off).content == text
        compressed = c.peek_header(token).compressed
        mirrored = len(data) > _COMPRESS_MIN_BYTES and len(_deflate(data)) < len(data)
        assert compressed == mirrored
        assert len(token) == OVERHEAD + (len(_deflate(data)) if compressed else len(data))
        attempted += len(data) > _COMPRESS_MIN_BYTES
        shrank += compressed
        plain.append(len(data))
        saved.append(len(off) - len(token))
        tokens.append(token)
    datas = [m.encode("utf-8") for m in messages]
    kept = [p for p in map(_compress_as_shipped, datas) if p is not None]
    offs = [
        _pack_uncompressed(keys, conversation, i + 1, int(role), text, seconds)
        for i, text in enumerate(messages)
    ]
    n = len(messages)

    def compress_pass() -> None:
        for data in datas:
            _compress_as_shipped(data)

    def inflate_pass() -> None:
        for packed in kept:
            _inflate(packed)

    def pack_unpack_pass() -> None:
        for i, text in enumerate(messages):
            c.unpack(keys, conversation, c.pack(keys, conversation, i + 1, role, text, stamp))

    def unpack_off_pass() -> None:
        for token in offs:
            c.unpack(keys, conversation, token)

    def pack_off_pass() -> None:
        for i, text in enumerate(messages):
            _pack_uncompressed(keys, conversation, i + 1, int(role), text, seconds)

    total_plain = sum(plain)
    return {
        "count": n,
        "plain_bytes_median": statistics.median(plain),
        "plain_bytes_total": total_plain,
        "saved_bytes_median": statistics.median(saved),
        "saved_bytes_mean": round(sum(saved) / n, 1),
        "saved_bytes_total": sum(saved),
        "saved_share_of_token_bytes": round(sum(saved) / (total_plain + OVERHEAD * n), 4),
        "shrank_share": round(shrank / n, 4),
        "not_attempted_share": round(1 - attempted / n, 4),
        # per message of the class: deflate on write, inflate on every read (averaged
        # over all messages, those never compressed count as zero)
        "compress_us_per_message": round(_per_message_us(compress_pass, n, repeats), 2),
        "inflate_us_per_message": round(
            _per_message_us(inflate_pass, n, repeats) if kept else 0.0, 2
        ),
        "pack_unpack_us_per_message": round(_per_message_us(pack_unpack_pass, n, repeats), 2),
        "pack_unpack_uncompressed_us_per_message": round(
            _per_message_us(pack_off_pass, n, repeats)
            + _per_message_us(unpack_off_pass, n, repeats), 2
        ),
    }


# --- CRIME ------------------------------------------------------------------------------

_KNOWN_CONTEXT = "login code: "
_TEMPLATE = (
    "Here is a summary of what everyone said in the group today:\n\n"
    "- **Alice** asked whether the deploy is finished, and shared her {context}{secret} "
    "so Bob could sign in as her for the check (it expires in ten minutes).\n"
    "- **Bob** said the staging database migrated cleanly and the smoke tests passed.\n"
    '- **Mallory** wrote: "{injection}"\n'
    "- **Carol** will review the pull request for the billing page tomorrow morning.\n\n"
    "Let me know if you want the full thread or a shorter digest."
)
# Characters the attacker pads with: absent from the message, 8- and 9-bit literals in
# deflate's fixed code, so each round shifts the bit alignment of what follows.
_PAD_POOL = "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏ~^|{}<>@$%"


def _crime(c: ModuleType, keys: Any, conversation: uuid.UUID, secrets_count: int,
           max_rounds: int) -> dict[str, Any]:
    rng = random.Random(1919)
    stamp = datetime(2026, 12, 2, tzinfo=UTC)
    seconds = int(stamp.timestamp())
    sequence = 0
    calls_per_digit: list[int] = []
    calls_per_secret: list[int] = []
    digits_right = digits_total = secrets_right = 0
    rounds_on_differ = rounds_off_differ = rounds = 0
    guesses_digit_one: list[int] = []
    for _ in range(secrets_count):
        secret = f"{rng.randrange(10**6):06d}"
        known = ""
        secret_calls = 0
        for _position in range(6):
            totals = dict.fromkeys("0123456789", 0)
            calls = 0
            choice = None
            for round_index in range(max_rounds):
                pad = "".join(rng.choice(_PAD_POOL) for _ in range(round_index % 9))
                on: dict[str, int] = {}
                off: set[int] = set()
                for guess in totals:
                    injection = f"{pad}{_KNOWN_CONTEXT}{known}{guess}"
                    text = _TEMPLATE.format(context=_KNOWN_CONTEXT, secret=secret,
                                            injection=injection)
                    sequence += 1
                    token = c.pack(keys, conversation, sequence, c.Role.ASSISTANT, text, stamp)
                    on[guess] = len(token)
                    off.add(len(_pack_uncompressed(keys, conversation, sequence,
                                                   int(c.Role.ASSISTANT), text, seconds)))
                    calls += 1
                rounds += 1
                rounds_on_differ += len(set(on.values())) > 1
                rounds_off_differ += len(off) > 1
                for guess, length in on.items():
                    totals[guess] += length
                best = min(totals.values())
                leaders = [g for g, total in totals.items() if total == best]
                if len(leaders) == 1:
                    choice = leaders[0]
                    break
            if choice is None:  # no signal within the bound: the attacker guesses
                choice = min(totals, key=lambda g: (totals[g], g))
            calls_per_digit.append(calls)
            if not known:
                guesses_digit_one.append(calls)
            secret_calls += calls
            digits_total += 1
            digits_right += choice == secret[len(known)]
            known += choice
        calls_per_secret.append(secret_calls)
        secrets_right += known == secret
    return {
        "secrets": secrets_count,
        "secrets_recovered": secrets_right,
        "digits": digits_total,
        "digits_recovered": digits_right,
        "guess_messages_per_digit_median": statistics.median(calls_per_digit),
        "guess_messages_per_digit_max": max(calls_per_digit),
        "guess_messages_per_secret_median": statistics.median(calls_per_secret),
        "guess_messages_per_secret_max": max(calls_per_secret),
        "brute_force_space": 10**6,
        "rounds": rounds,
        "rounds_lengths_differ_compression_on": rounds_on_differ,
        "rounds_lengths_differ_compression_off": rounds_off_differ,
        "pack_calls": sum(calls_per_secret),
    }


# --- driver ---------------------------------------------------------------------------


def run(quick: bool, seeds: Path = _SEEDS) -> dict[str, Any]:
    """Measure and return the figures (as in the JSON line printed by ``main``)."""
    c = _crypto()
    cap, repeats, secrets_count = (400, 3, 4) if quick else (3000, 7, 16)
    conversation = uuid.uuid4()
    keys = c.derive_conversation_keys(c.new_key(), conversation, 1)
    messages = corpus(seeds)
    sample = random.Random(7)
    classes: dict[str, Any] = {}
    for name, _title, _low, _high in _CLASSES:
        role = c.Role.ASSISTANT if name == "ai_reply" else c.Role.USER
        figures: dict[str, Any] = {}
        pooled: list[str] = []
        for source, texts in messages[name].items():
            chosen = sample.sample(texts, min(cap, len(texts)))
            figures[source] = _measure(c, keys, conversation, chosen, role, repeats)
            pooled += chosen
        figures["all"] = _measure(c, keys, conversation, pooled, role, repeats)
        figures["available"] = {s: len(t) for s, t in messages[name].items()}
        classes[name] = figures
    crime = _crime(c, keys, conversation, secrets_count, max_rounds=12)
    off = on = 0.0
    for name in ("short_human", "ai_reply"):
        f = classes[name]["all"]
        off += f["plain_bytes_total"] / f["count"] + OVERHEAD
        on += (f["plain_bytes_total"] - f["saved_bytes_total"]) / f["count"] + OVERHEAD
    exchange = {"token_bytes_off": round(off, 1), "token_bytes_on": round(on, 1),
                "saved_share": round(1 - on / off, 4)}
    return {
        "token_overhead_bytes": OVERHEAD,
        "compress_min_bytes": _COMPRESS_MIN_BYTES,
        "classes": classes,
        "exchange": exchange,
        "crime": crime,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print tables, then the JSON figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and runs")
    parser.add_argument("--seeds", type=Path, default=_SEEDS, help="markdown documents")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick, seeds=args.seeds)
    header = (
        f"{'class':<31} {'source':<6} {'n':>5} {'med B':>6} {'total B':>9} {'med sv':>6} "
        f"{'total sv':>9} {'sv %':>6} {'shrank':>7} {'<=64B':>6} {'defl us':>7} "
        f"{'infl us':>7} {'pk+up':>6} {'off':>6}"
    )
    print(header)
    for name, title, _low, _high in _CLASSES:
        for source in ("seeds", "stdlib", "all"):
            f = figures["classes"][name][source]
            print(
                f"{title:<31} {source:<6} {f['count']:>5} {f['plain_bytes_median']:>6.0f} "
                f"{f['plain_bytes_total']:>9} {f['saved_bytes_median']:>6.0f} "
                f"{f['saved_bytes_total']:>9} {100 * f['saved_share_of_token_bytes']:>5.1f}% "
                f"{100 * f['shrank_share']:>6.1f}% {100 * f['not_attempted_share']:>5.1f}% "
                f"{f['compress_us_per_message']:>7.2f} {f['inflate_us_per_message']:>7.2f} "
                f"{f['pack_unpack_us_per_message']:>6.1f} "
                f"{f['pack_unpack_uncompressed_us_per_message']:>6.1f}"
            )
    print("B: UTF-8 plaintext bytes; sv: bytes saved per token; sv %: of the uncompressed token"
          f" bytes (plaintext + {OVERHEAD}); shrank: share compressed; <=64B: never tried;")
    print("defl / infl us: zlib per message as shipped, on write / on each read; pk+up / off:"
          " pack+unpack per message in us, as shipped / without compression")
    x = figures["exchange"]
    print(f"one exchange (mean short human message + mean AI reply): {x['token_bytes_off']:.0f}"
          f" token bytes uncompressed, {x['token_bytes_on']:.0f} as shipped "
          f"({100 * x['saved_share']:.1f}% saved)")
    k = figures["crime"]
    print()
    print("CRIME-style: a 6-digit code and one attacker guess per AI reply, token length only")
    print(f"  secrets recovered          {k['secrets_recovered']}/{k['secrets']} "
          f"(digits {k['digits_recovered']}/{k['digits']})")
    print(f"  guess messages per digit   median {k['guess_messages_per_digit_median']}, "
          f"max {k['guess_messages_per_digit_max']}")
    print(f"  guess messages per secret  median {k['guess_messages_per_secret_median']}, "
          f"max {k['guess_messages_per_secret_max']} (vs 1,000,000 codes)")
    print(f"  rounds of 10 guesses whose lengths differed: compression on "
          f"{k['rounds_lengths_differ_compression_on']}/{k['rounds']}, off "
          f"{k['rounds_lengths_differ_compression_off']}/{k['rounds']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
