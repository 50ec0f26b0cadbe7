"""AI errors, and the conversion of every SDK and transport error into them.

Messages are safe to show to users and to log: they name the provider, the HTTP status
and the provider's error type, never an API key, a prompt, or the provider's own error
text (which can echo a masked key or part of the request). Converted errors are raised
`from None` so the SDK exception, with its text, is not chained into tracebacks either.
"""

from __future__ import annotations

import email.utils
import json
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anthropic
import openai

__all__ = [
    "AIError",
    "AIProviderError",
    "AIRateLimited",
    "AITimeout",
    "AIUnavailable",
    "from_anthropic_error",
    "from_openai_error",
    "from_transport_error",
]


class AIError(Exception):
    """Base of every error the `ai` package raises.

    `code` is a stable machine-readable code; `message` is a safe human-readable text.
    `status` is the provider's HTTP status when there was one, and `retry_after_s` the
    delay the provider asked for (Retry-After), if any.
    """

    code: str = "AI_ERROR"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class AIRateLimited(AIError):
    """The provider refused the request because of a rate limit (HTTP 429)."""

    code = "AI_RATE_LIMITED"


class AIUnavailable(AIError):
    """The provider could not be reached, failed (5xx, overloaded), or is not configured."""

    code = "AI_UNAVAILABLE"


class AITimeout(AIError):
    """The provider took too long to answer or went silent mid-stream."""

    code = "AI_TIMEOUT"


class AIProviderError(AIError):
    """Any other provider failure: a rejected request, a mid-stream error event."""

    code = "AI_ERROR"


_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "h2", "anyio", "aiohttp")
_SAFE_WORD = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_RETRY_AFTER_CAP_S = 3600.0


def _is_transport_class(cls: type) -> bool:
    root = cls.__module__.split(".", 1)[0]
    return root.startswith(_TRANSPORT_MODULES)


def from_transport_error(exc: BaseException, provider: str) -> AIError | None:
    """Map a network-level error (httpx/httpcore/anyio/OS) to an AIError, or return None.

    The SDKs convert most of these, but an error raised while reading a stream can reach us
    unconverted. The transport library is recognised by module name because this package may
    not import it.
    """
    if isinstance(exc, AIError):
        return exc
    mro = type(exc).__mro__
    from_transport = any(_is_transport_class(cls) for cls in mro)
    if isinstance(exc, TimeoutError) or (
        from_transport and any("Timeout" in cls.__name__ for cls in mro)
    ):
        return AITimeout(f"{provider} timed out")
    if from_transport or isinstance(exc, OSError | EOFError | ssl.SSLError):
        return AIUnavailable(f"connection to {provider} failed")
    return None


def _safe_word(value: object) -> str | None:
    if isinstance(value, str) and _SAFE_WORD.fullmatch(value):
        return value
    return None


def _body_error_type(body: object) -> str | None:
    """The provider's error type (`error.type`) from an error body, if it looks safe."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error", body)
    if isinstance(inner, Mapping):
        return _safe_word(inner.get("type")) or _safe_word(inner.get("code"))
    return None


def _retry_after(headers: object) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or HTTP date), if present."""
    get: Callable[[str], object] | None = getattr(headers, "get", None)
    if get is None:
        return None
    try:
        raw_ms = get("retry-after-ms")
        if isinstance(raw_ms, str):
            return min(max(float(raw_ms) / 1000.0, 0.0), _RETRY_AFTER_CAP_S)
        raw = get("retry-after")
        if not isinstance(raw, str):
            return None
        try:
            seconds = float(raw)
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            seconds = when.timestamp() - time.time()
        return min(max(seconds, 0.0), _RETRY_AFTER_CAP_S)
    except (TypeError, ValueError, OverflowError):
        return None


def _describe(status: int | None, error_type: str | None) -> str:
    parts = [f"HTTP {status}"] if status else []
    if error_type:
        parts.append(error_type)
    return f" ({', '.join(parts)})" if parts else ""


def _classify_status(
    provider: str,
    status: int | None,
    error_type: str | None,
    headers: object,
) -> AIError:
    """Map an HTTP status and/or a provider error type to an AIError."""
    detail = _describe(status, error_type)
    retry_after = _retry_after(headers)
    kind = error_type or ""
    if status == 429 or "rate_limit" in kind:
        return AIRateLimited(
            f"{provider} rate limit reached{detail}", status=status, retry_after_s=retry_after
        )
    if "overloaded" in kind or kind in ("api_error", "server_error", "service_unavailable"):
        return AIUnavailable(
            f"{provider} is unavailable{detail}", status=status, retry_after_s=retry_after
        )
    if status in (408, 504) or "timeout" in kind:
        return AITimeout(f"{provider} timed out{detail}", status=status)
    if status is not None and status >= 500:
        return AIUnavailable(
            f"{provider} is unavailable{detail}", status=status, retry_after_s=retry_after
        )
    return AIProviderError(f"{provider} rejected the request{detail}", status=status)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 100 <= status < 600:
        return status
    return None


def _headers_of(exc: BaseException) -> object:
    return getattr(getattr(exc, "response", None), "headers", None)


def _unexpected(provider: str, exc: BaseException) -> AIError:
    return AIProviderError(f"unexpected {provider} failure ({type(exc).__name__})")


@dataclass(frozen=True, slots=True)
class _SDKErrors:
    """One SDK's exception classes: openai and anthropic are generated with one hierarchy."""

    provider: str
    base: type[Exception]
    api_error: type[Exception]
    status_error: type[Exception]
    timeout: type[Exception]
    connection: type[Exception]
    rate_limit: type[Exception]
    server_error: type[Exception]
    malformed: type[Exception]
    stream_error_has_status: bool
    """How the SDK raises an error event sent inside a 200 stream: anthropic as an
    APIStatusError carrying the stream's status, openai as a bare APIError."""


_OPENAI = _SDKErrors(
    provider="openai",
    base=openai.OpenAIError,
    api_error=openai.APIError,
    status_error=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    rate_limit=openai.RateLimitError,
    server_error=openai.InternalServerError,
    malformed=openai.APIResponseValidationError,
    stream_error_has_status=False,
)
_ANTHROPIC = _SDKErrors(
    provider="anthropic",
    base=anthropic.AnthropicError,
    api_error=anthropic.APIError,
    status_error=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    rate_limit=anthropic.RateLimitError,
    server_error=anthropic.InternalServerError,
    malformed=anthropic.APIResponseValidationError,
    stream_error_has_status=True,
)


def _stream_error(provider: str, exc: BaseException) -> AIError:
    """An error event inside a successful stream: its type is all we have."""
    error_type = _body_error_type(getattr(exc, "body", None))
    mapped = _classify_status(provider, None, error_type, None)
    if isinstance(mapped, AIProviderError):
        detail = _describe(None, error_type)
        return AIProviderError(f"{provider} reported an error mid-stream{detail}")
    return mapped


def _from_sdk_error(exc: BaseException, sdk: _SDKErrors) -> AIError:
    """The one conversion order for both SDKs; most specific class first, as their
    timeout error is a connection error and every API error an instance of their base."""
    provider = sdk.provider
    if isinstance(exc, AIError):
        return exc
    if isinstance(exc, sdk.timeout):
        return AITimeout(f"{provider} timed out")
    if isinstance(exc, sdk.connection):
        return AIUnavailable(f"connection to {provider} failed")
    if isinstance(exc, sdk.status_error):
        status = _status_of(exc)
        if sdk.stream_error_has_status and status is not None and status < 400:
            return _stream_error(provider, exc)
        if isinstance(exc, sdk.rate_limit):
            status = status or 429
        elif isinstance(exc, sdk.server_error) and (status is None or status < 500):
            status = 500
        error_type = _body_error_type(getattr(exc, "body", None))
        return _classify_status(provider, status, error_type, _headers_of(exc))
    if isinstance(exc, sdk.malformed):
        return AIProviderError(f"{provider} sent a malformed response")
    if not sdk.stream_error_has_status and isinstance(exc, sdk.api_error):
        return _stream_error(provider, exc)
    transport = from_transport_error(exc, provider)
    if transport is not None:
        return transport
    if isinstance(exc, sdk.base):
        return AIProviderError(f"{provider} client error ({type(exc).__name__})")
    return _unexpected(provider, exc)


def from_openai_error(exc: BaseException) -> AIError:
    """Convert anything the openai SDK (or its transport) raised into an AIError.

    This includes an error object inside a 200 stream, which the SDK raises as an APIError.
    """
    return _from_sdk_error(exc, _OPENAI)


def from_anthropic_error(exc: BaseException) -> AIError:
    """Convert anything the anthropic SDK (or its transport) raised into an AIError.

    This includes the `event: error` Anthropic sends inside a 200 stream (for instance
    `overloaded_error`), which the SDK raises as an APIStatusError with status 200.
    """
    return _from_sdk_error(exc, _ANTHROPIC)
