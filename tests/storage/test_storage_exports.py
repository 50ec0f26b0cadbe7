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
    assert sorted(storage.__all__) == storage.__all__
