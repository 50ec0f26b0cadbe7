"""Login password hashing with Argon2id."""

from __future__ import annotations

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import PasswordHasher

# Cheaper than the defaults so the property test stays fast; the defaults are checked below.
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_default_hash_is_argon2id_with_owasp_parameters() -> None:
    hasher = PasswordHasher()
    hashed = hasher.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(hashed, "correct horse battery staple") is True
    assert hasher.verify(hashed, "correct horse battery stapl") is False
    assert hasher.needs_rehash(hashed) is False
    assert hasher.hash("same") != hasher.hash("same")  # salted


def test_needs_rehash_when_parameters_change() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hashed = old.hash("pw")
    for newer in (
        PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1),
        PasswordHasher(time_cost=1, memory_cost=2048, parallelism=1),
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2),
    ):
        assert newer.needs_rehash(hashed) is True
        assert newer.verify(hashed, "pw") is True  # the old hash still logs in
    assert old.needs_rehash(hashed) is False


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plain text",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$",
        "$pbkdf2$100000$c2FsdA==$aGFzaA==",
        "$2b$12$abcdefghijklmnopqrstuuJ6yJmZ4n8n3oKQ9kM2p7u8Qe6Z4Y2",
    ],
)
def test_malformed_hashes_never_verify_and_never_raise(hashed: str) -> None:
    assert CHEAP.verify(hashed, "anything") is False
    assert CHEAP.needs_rehash(hashed) is True


def test_argon2i_hash_from_elsewhere_needs_rehash() -> None:
    legacy = argon2.PasswordHasher(type=argon2.Type.I, time_cost=1, memory_cost=1024).hash("pw")
    assert CHEAP.verify(legacy, "pw") is True
    assert CHEAP.needs_rehash(legacy) is True


def test_lone_surrogates() -> None:
    with pytest.raises(ValueError):
        CHEAP.hash("bad \udc80")
    assert CHEAP.verify(CHEAP.hash("good"), "bad \udc80") is False


def test_dummy_verify_does_the_work_of_a_real_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """What it costs next to a real check is measured by bench/crypto_bench.py
    (`argon2_dummy_verify_ms`, `argon2_verify_ms`); here, why it costs the same, which
    holds on any machine: one Argon2id verification against a hash with this hasher's
    own parameters, made once."""
    hasher = PasswordHasher(time_cost=3, memory_cost=2048, parallelism=2)  # not defaults
    hashed = hasher.hash("pw")
    verified: list[str] = []
    argon2_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(hash.decode() if isinstance(hash, bytes) else hash)
        return argon2_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    assert hasher.verify(hashed, "wrong") is False
    hasher.dummy_verify("wrong")
    hasher.dummy_verify("something else")
    real, dummy, again = verified
    assert real == hashed
    assert dummy == again, "the dummy hash is made once"
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(hashed)
    assert hasher.needs_rehash(dummy) is False


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        PasswordHasher(time_cost=0)
    with pytest.raises(ValueError):
        PasswordHasher(memory_cost=4, parallelism=1)


@settings(max_examples=15, deadline=None)
@given(password=st.text(max_size=40), other=st.text(max_size=40))
def test_verify_property(password: str, other: str) -> None:
    try:
        hashed = CHEAP.hash(password)
    except ValueError:
        return  # not encodable (lone surrogates): refused up front
    assert CHEAP.verify(hashed, password) is True
    assert CHEAP.verify(hashed, other) is (other == password)
