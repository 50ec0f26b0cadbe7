"""Errors of the service layer, each with a protocol error code and an HTTP status.

    ServiceError                  base: `code`, safe `message`, `status`
      InvalidInput                400  INVALID_PAYLOAD (also wraps protocol.ProtocolError)
      Unauthorized                401  UNAUTHORIZED
      Forbidden                   403  FORBIDDEN (a cookie-authorized change without its
                                       CSRF token, a preflight from a foreign origin)
      NotFound                    404  NOT_FOUND (missing and not-yours look the same)
      Conflict                    409  CONFLICT
      Busy                        409  BUSY (a reply is already being generated)
      LimitExceeded               422  LIMIT_EXCEEDED (a count limit)
        PayloadTooLarge           413  LIMIT_EXCEEDED (a body too large)
      RateLimited                 429  RATE_LIMITED (+ retry_after seconds)
      EditRejected                400  EDIT_FAILED (e.g. no such sequence)
      KeysMissing                 409  KEYS_MISSING (the person has no key pair yet: they
                                       get one at their next sign-in)
      NotSupported                409  NOT_SUPPORTED (an operation this kind of
                                       conversation does not offer)
      Cancelled                   409  CANCELLED (a reply discarded by an edit or delete)
      Unavailable                 503  UNAVAILABLE (database or cache down, or draining;
                                       + retry_after when a retry elsewhere will do)
      GenerationFailed            502  the AI provider failed; code is the AI code

Lower layers' errors (storage, crypto, ai, protocol) are converted by
`server.error_mapping.to_service_error`,
the one place where that happens.
"""

from __future__ import annotations

from protocol.names import ErrorCode

__all__ = [
    "Busy",
    "Cancelled",
    "Conflict",
    "EditRejected",
    "Forbidden",
    "GenerationFailed",
    "InvalidInput",
    "KeysMissing",
    "LimitExceeded",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
]


class ServiceError(Exception):
    """A failure a client may see: a code, a message safe to show, an HTTP status."""

    code: str = ErrorCode.INTERNAL
    status: int = 500
    default_message = "Internal error"
    #: Seconds after which a retry may succeed (`retryAfter` on the wire), when known.
    retry_after: float | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(ServiceError):
    code = ErrorCode.INVALID_PAYLOAD
    status = 400
    default_message = "Invalid payload"


class Unauthorized(ServiceError):
    code = ErrorCode.UNAUTHORIZED
    status = 401
    default_message = "Authentication required"


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND
    status = 404
    default_message = "Conversation not found"


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT
    status = 409
    default_message = "Conflict"


class Busy(ServiceError):
    code = ErrorCode.BUSY
    status = 409
    default_message = "A reply is already being generated in this conversation"


class LimitExceeded(ServiceError):
    code = ErrorCode.LIMIT_EXCEEDED
    status = 422
    default_message = "Limit exceeded"


class PayloadTooLarge(LimitExceeded):
    status = 413
    default_message = "Request body too large"


class RateLimited(ServiceError):
    code = ErrorCode.RATE_LIMITED
    status = 429
    default_message = "Too many requests"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EditRejected(ServiceError):
    code = ErrorCode.EDIT_FAILED
    status = 400
    default_message = "Edit failed"


class KeysMissing(ServiceError):
    code = ErrorCode.KEYS_MISSING
    status = 409
    default_message = "This person has not signed in since keys were introduced"


class NotSupported(ServiceError):
    code = ErrorCode.NOT_SUPPORTED
    status = 409
    default_message = "Not available for this kind of conversation"


class Cancelled(ServiceError):
    code = ErrorCode.CANCELLED
    status = 409
    default_message = "The reply was cancelled by an edit or a delete"


class Forbidden(ServiceError):
    code = ErrorCode.FORBIDDEN
    status = 403
    default_message = "Forbidden"


class Unavailable(ServiceError):
    code = ErrorCode.UNAVAILABLE
    status = 503
    default_message = "Service temporarily unavailable"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenerationFailed(ServiceError):
    """The AI provider failed; `code` is one of the AI_* codes."""

    status = 502

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
