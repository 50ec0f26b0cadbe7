"""Every SDK and transport error becomes an AIError with the right code."""

from __future__ import annotations

import email.utils
import inspect
import ssl
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from ai.exceptions import (
    AIError,
    AIProviderError,
    AIRateLimited,
    AITimeout,
    AIUnavailable,
    from_anthropic_error,
    from_openai_error,
    from_transport_error,
)

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/x")
MAPPERS = [from_openai_error, from_anthropic_error]


def _response(status: int, body: object = None, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, json=body, headers=headers, request=REQUEST)


def _exception_classes(*modules: Any) -> list[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in modules:
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if inspect.isclass(value) and issubclass(value, Exception):
                found.add(value)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


@pytest.mark.parametrize("mapper", MAPPERS)
@pytest.mark.parametrize(
    "cls", _exception_classes(openai, anthropic, httpx2), ids=lambda c: c.__qualname__
)
def test_no_sdk_or_transport_exception_escapes_unconverted(
    mapper: Any, cls: type[BaseException]
) -> None:
    # Built without __init__, so the mapper must also cope with half-filled exceptions.
    exc = cls.__new__(cls)
    mapped = mapper(exc)
    assert isinstance(mapped, AIError)
    assert mapped.code in {"AI_RATE_LIMITED", "AI_UNAVAILABLE", "AI_TIMEOUT", "AI_ERROR"}
    if cls.__module__.startswith("httpx") and "Timeout" in cls.__name__:
        assert isinstance(mapped, AITimeout)


@pytest.mark.parametrize("mapper", MAPPERS)
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionResetError("peer reset"), AIUnavailable),
        (OSError("network unreachable"), AIUnavailable),
        (ssl.SSLError("bad handshake"), AIUnavailable),
        (TimeoutError(), AITimeout),
        (httpx2.RemoteProtocolError("incomplete chunked read"), AIUnavailable),
        (httpx2.ReadTimeout("read timed out"), AITimeout),
        (KeyError("choices"), AIProviderError),
        (ValueError("bad json"), AIProviderError),
    ],
)
def test_transport_and_unexpected_errors(
    mapper: Any, exc: Exception, expected: type[AIError]
) -> None:
    assert type(mapper(exc)) is expected


def test_transport_mapper_leaves_unrelated_errors_alone() -> None:
    assert from_transport_error(KeyError("x"), "openai") is None
    already = AITimeout("slow")
    assert from_transport_error(already, "openai") is already


@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (openai.RateLimitError("m", response=_response(429), body=None), AIRateLimited, 429),
        (openai.InternalServerError("m", response=_response(503), body=None), AIUnavailable, 503),
        (openai.BadRequestError("m", response=_response(400), body=None), AIProviderError, 400),
        (openai.AuthenticationError("m", response=_response(401), body=None), AIProviderError, 401),
        (openai.APIStatusError("m", response=_response(408), body=None), AITimeout, 408),
        (openai.APITimeoutError(request=REQUEST), AITimeout, None),
        (openai.APIConnectionError(request=REQUEST), AIUnavailable, None),
    ],
)
def test_openai_errors(exc: Exception, expected: type[AIError], status: int | None) -> None:
    mapped = from_openai_error(exc)
    assert type(mapped) is expected
    assert mapped.status == status


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "boom", "type": "server_error"}, AIUnavailable),
        ({"message": "slow", "type": "rate_limit_exceeded"}, AIRateLimited),
        ({"message": "bad", "type": "invalid_request_error"}, AIProviderError),
        (None, AIProviderError),
    ],
)
def test_openai_error_objects_inside_a_stream(body: object, expected: type[AIError]) -> None:
    mapped = from_openai_error(openai.APIError("boom", REQUEST, body=body))
    assert type(mapped) is expected


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (200, "overloaded_error", AIUnavailable),  # `event: error` inside a 200 stream
        (200, "api_error", AIUnavailable),
        (200, "rate_limit_error", AIRateLimited),
        (200, "invalid_request_error", AIProviderError),
        (429, "rate_limit_error", AIRateLimited),
        (500, "api_error", AIUnavailable),
        (529, "overloaded_error", AIUnavailable),
        (504, "timeout_error", AITimeout),
        (400, "invalid_request_error", AIProviderError),
        (401, "authentication_error", AIProviderError),
        (404, "not_found_error", AIProviderError),
    ],
)
def test_anthropic_errors(status: int, error_type: str, expected: type[AIError]) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "details"}}
    exc = anthropic.APIStatusError("x", response=_response(status, body), body=body)
    mapped = from_anthropic_error(exc)
    assert type(mapped) is expected
    assert error_type in mapped.message


def test_anthropic_connection_errors() -> None:
    assert type(from_anthropic_error(anthropic.APITimeoutError(REQUEST))) is AITimeout
    conn = anthropic.APIConnectionError(request=REQUEST)
    assert type(from_anthropic_error(conn)) is AIUnavailable


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    exc = openai.RateLimitError("m", response=_response(429, None, **headers), body=None)
    assert from_openai_error(exc).retry_after_s == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    exc = openai.RateLimitError(
        "m", response=_response(429, None, **{"retry-after": when}), body=None
    )
    retry_after = from_openai_error(exc).retry_after_s
    assert retry_after is not None and 25 <= retry_after <= 31


def test_messages_never_repeat_the_provider_text() -> None:
    secret = "Incorrect API key provided: sk-proj-SECRET. Your prompt: tell me a secret"
    body = {
        "error": {"message": secret, "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    exc = openai.AuthenticationError(secret, response=_response(401, body), body=body)
    mapped = from_openai_error(exc)
    assert "SECRET" not in str(mapped) and "secret" not in mapped.message
    assert mapped.message == "openai rejected the request (HTTP 401, invalid_request_error)"


def test_unsafe_error_types_are_left_out() -> None:
    body = {"error": {"type": "weird type with spaces: sk-123", "message": "m"}}
    exc = openai.BadRequestError("m", response=_response(400, body), body=body)
    assert from_openai_error(exc).message == "openai rejected the request (HTTP 400)"
