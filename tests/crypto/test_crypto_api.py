"""The package surface: complete exports, redacted reprs, no foreign errors escaping."""

from __future__ import annotations

import ast
import importlib
import inspect
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto
from crypto import (
    AccessTokenError,
    ConversationKeys,
    CryptoError,
    InvalidToken,
    KeyUnwrapError,
    Role,
    WeakSecretError,
    derive_conversation_keys,
    new_key,
    pack,
    seed_v1_keys,
    unpack,
    unwrap_key,
    wrap_key,
)

SUBMODULES = [
    "exceptions",
    "keys",
    "tokens",
    "chain",
    "passwords",
    "access_tokens",
    "channel_seal",
    "member_keys",
]


def _top_level_public_names(module_name: str) -> set[str]:
    module = importlib.import_module(f"crypto.{module_name}")
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("module_name", SUBMODULES)
def test_submodule_all_lists_every_public_definition(module_name: str) -> None:
    module = importlib.import_module(f"crypto.{module_name}")
    assert set(module.__all__) == _top_level_public_names(module_name)


def test_package_all_is_complete() -> None:
    expected: set[str] = set()
    for module_name in SUBMODULES:
        expected |= _top_level_public_names(module_name)
    assert set(crypto.__all__) == expected
    assert len(crypto.__all__) == len(set(crypto.__all__))
    for name in crypto.__all__:
        assert getattr(crypto, name) is not None


def test_exception_hierarchy_and_fixed_messages() -> None:
    for cls in (InvalidToken, KeyUnwrapError, AccessTokenError, WeakSecretError):
        assert issubclass(cls, CryptoError)
    assert str(InvalidToken("authentication failed")) == "invalid message token"
    assert str(KeyUnwrapError("authentication failed")) == "cannot unwrap key"
    assert str(AccessTokenError("token expired")) == "token expired"


def _secrets_of(keys: ConversationKeys) -> list[str]:
    out = []
    for key in (keys.enc, keys.integrity):
        out += [key.hex(), key.hex().upper(), repr(key), str(key), key.decode("latin-1")]
    return out


def test_conversation_keys_never_show_key_bytes() -> None:
    keys = derive_conversation_keys(new_key(), uuid.uuid4(), 1)
    texts = [repr(keys), str(keys), f"{keys}", repr([keys]), repr({"k": keys})]
    assert repr(keys) == "ConversationKeys(<redacted>)"
    for text in texts:
        for secret in _secrets_of(keys):
            assert secret not in text


def test_errors_never_show_key_bytes() -> None:
    conv = uuid.uuid4()
    keys = derive_conversation_keys(new_key(), conv, 1)
    other = seed_v1_keys(new_key(), str(conv))
    token = pack(keys, conv, 1, Role.USER, "hello")
    raised: list[BaseException] = []
    for attempt in (
        lambda: unpack(other, conv, token),
        lambda: unpack(keys, conv, token[:20]),
        lambda: unwrap_key(keys.enc, wrap_key(keys.integrity, keys.enc, context=b"a"),
                           context=b"a"),
        lambda: derive_conversation_keys(keys.enc[:16], conv, 1),
        lambda: ConversationKeys(enc=keys.enc[:31], integrity=keys.integrity),
    ):
        with pytest.raises((CryptoError, ValueError)) as info:
            attempt()
        raised.append(info.value)
    for exc in raised:
        text = f"{exc!s} {exc!r} {vars(exc) if hasattr(exc, '__dict__') else ''}"
        for secret in _secrets_of(keys) + _secrets_of(other):
            assert secret not in text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=40))
def test_unwrap_garbage_only_raises_key_unwrap_error(blob: bytes, context: bytes) -> None:
    with pytest.raises(KeyUnwrapError):
        unwrap_key(bytes(32), blob, context=context)
    with pytest.raises(KeyUnwrapError):
        unwrap_key(bytes(32), b"\x01" + blob, context=context)
