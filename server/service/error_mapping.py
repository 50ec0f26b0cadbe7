"""The one place where lower layers' errors become ServiceErrors."""

from __future__ import annotations

import logging

import ai.exceptions as ai_errors
import crypto.exceptions as crypto_errors
import storage.exceptions as storage_errors
from protocol.exceptions import ProtocolError
from server.service import exceptions as errors

__all__ = ["to_service_error"]

_LOG = logging.getLogger(__name__)


def to_service_error(exc: BaseException) -> errors.ServiceError:
    """Map any exception to the ServiceError a client may see; unknown ones are logged once."""
    if isinstance(exc, errors.ServiceError):
        return exc
    if isinstance(exc, ProtocolError):
        return errors.InvalidInput(exc.message)
    if isinstance(exc, storage_errors.NotFound | storage_errors.Forbidden):
        # Forbidden (row-level security) must look exactly like "not found".
        return errors.NotFound()
    if isinstance(exc, storage_errors.Conflict):
        return errors.Conflict("The request conflicts with a concurrent change; retry")
    if isinstance(exc, storage_errors.Unavailable):
        return errors.Unavailable("Database unavailable")
    if isinstance(exc, ai_errors.AIError):
        return errors.GenerationFailed(exc.code, exc.message)
    if isinstance(exc, crypto_errors.AccessTokenError):
        return errors.Unauthorized(f"Authentication failed: {exc}")
    if isinstance(exc, crypto_errors.CryptoError):
        _LOG.error("crypto failure: %s", type(exc).__name__)
        return errors.ServiceError("Stored data could not be read")
    if isinstance(exc, OSError | ConnectionError):
        return errors.Unavailable()
    _LOG.exception("unexpected error", exc_info=exc)
    return errors.ServiceError()
