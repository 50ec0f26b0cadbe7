"""Login password hashing with Argon2id."""

from __future__ import annotations

import time
from collections.abc import Callable

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


def test_dummy_verify_costs_about_a_real_verify() -> None:
    hasher = PasswordHasher()
    hashed = hasher.hash("pw")
    hasher.dummy_verify("warm up")  # the dummy hash is made once, lazily

    def timed(action: Callable[[], object]) -> float:
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            action()
            samples.append(time.perf_counter() - start)
        return min(samples)

    real = timed(lambda: hasher.verify(hashed, "wrong"))
    dummy = timed(lambda: hasher.dummy_verify("wrong"))
    # Loose bounds: the machine may be busy; the point is that it is not free.
    assert 0.3 * real < dummy < 4.0 * real, (real, dummy)


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
