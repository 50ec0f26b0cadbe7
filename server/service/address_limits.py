"""Per-address limits on what anybody can do before authenticating: open a socket session
and register an account. Counted through the same `RateCounter` as every other limit,
so in Redis across instances when `REDIS_URL` is set.

- Connections (`RATE_CONNECTS_PER_MIN_PER_IP`): each new Engine.IO session is counted
  when its handshake arrives, before the library allocates anything for it; the first
  Socket.IO connect on that session is not counted again (see the socket adapter's
  `socket_admission`), so a normal client spends one unit per connection.
- Registrations (`RATE_REGISTERS_PER_HOUR_PER_IP`): each costs two Argon2id hashes, and
  each answer says whether an email is taken; the hourly budget bounds both.

The address is the TCP peer, or the trusted proxy's (`server.service.client_address`).
IPv6 addresses count per /64: one host usually holds a whole /64, so a per-/128 budget
would be no budget. Addresses on the allowlist (`RATE_LIMIT_ALLOWLIST`) are not counted.
Addresses are stored in Redis as keyed hashes (`key_names`).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from server.service import exceptions as errors
from server.service.address_allowlist import AddressAllowlist, parse_address
from server.service.event_limits import EventLimits
from server.service.key_names import KeyNames
from server.service.metrics import Metrics
from server.service.ratelimit import RateCounter

__all__ = ["AddressLimit", "AddressLimiter", "address_bucket"]

_IPV6_BUCKET_PREFIX = 64
_CONNECTIONS = "Too many connections from this address"
_REGISTRATIONS = "Too many accounts registered from this address; try again later"


class AddressLimit(enum.StrEnum):
    """Which per-address budget; the `limit` label of `scca_address_limited_total`."""

    HANDSHAKE = "handshake"
    CONNECT = "connect"
    REGISTER = "register"


@dataclass(frozen=True, slots=True)
class _Budget:
    key: str
    limit: int
    window_s: int
    message: str


def address_bucket(address: str) -> str:
    """What an address is counted as: an IPv4 address itself, an IPv6 address's /64, and
    anything unparsable (a proxy header can carry anything) as it is."""
    parsed = parse_address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((parsed, _IPV6_BUCKET_PREFIX), strict=False)
        return str(network)
    return str(parsed)


class AddressLimiter:
    """Raises `RateLimited` (429 on REST, a refused connection on sockets) past a budget;
    counts each refusal in `/metrics`."""

    def __init__(
        self,
        counter: RateCounter,
        limits: EventLimits,
        allowlist: AddressAllowlist,
        metrics: Metrics,
        names: KeyNames,
    ) -> None:
        self._counter = counter
        self._names = names
        self._allowlist = allowlist
        self._metrics = metrics
        # A handshake and a Socket.IO connect spend the one budget of connections.
        connections = _Budget("conn", limits.connects_per_ip, 60, _CONNECTIONS)
        self._budgets = {
            AddressLimit.HANDSHAKE: connections,
            AddressLimit.CONNECT: connections,
            AddressLimit.REGISTER: _Budget("reg", limits.registers_per_ip, 3600, _REGISTRATIONS),
        }

    async def check(self, limit: AddressLimit, address: str | None) -> None:
        """Count one `limit` for `address`; RateLimited when its budget is spent. No
        address (a Unix socket) and allowlisted ones are not counted."""
        if not address or address in self._allowlist:
            return
        budget = self._budgets[limit]
        # The address goes to Redis as a keyed hash, never in clear.
        key = f"{budget.key}:{self._names(address_bucket(address))}"
        wait = await self._counter.hit(key, budget.limit, budget.window_s)
        if wait is not None:
            self._metrics.address_limited(limit.value)
            raise errors.RateLimited(wait, budget.message)
