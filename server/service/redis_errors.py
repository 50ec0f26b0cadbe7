"""What a Redis call raises when Redis is away or the connection broke.

Every caller degrades on these instead of failing a request: limits fall back to a
local counter, the reply mirror and liveness marks are skipped (an outage is no evidence
that anyone died), presence counts this instance only.
"""

from __future__ import annotations

import redis.exceptions

__all__ = ["REDIS_ERRORS"]

REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
