"""The package's public names are all re-exported from ``storage``."""

from __future__ import annotations

import importlib

import storage

MODULES = [
    "audit",
    "connection",
    "conversations",
    "exceptions",
    "generations",
    "messages",
    "pool",
    "privacy",
    "records",
    "sessions",
    "users",
]


def test_all_is_complete_and_resolvable() -> None:
    exported = set(storage.__all__)
    for name in MODULES:
        module = importlib.import_module(f"storage.{name}")
        assert set(module.__all__) <= exported, name
    for name in exported:
        assert getattr(storage, name) is not None, name
    assert {"app_dsn", "apply_schema"} <= exported
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert sorted(storage.__all__, key=kind) == storage.__all__
