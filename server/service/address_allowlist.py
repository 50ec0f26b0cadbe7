"""Addresses exempt from the per-address limits (`RATE_LIMIT_ALLOWLIST`).

A load balancer that does not forward the client's address, or a load-test harness that
opens thousands of sockets from one machine, would otherwise spend one address's budget
for everybody behind it. Entries are addresses or CIDR blocks, IPv4 or IPv6; an
IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket reports an IPv4
peer) matches the IPv4 entries.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["AddressAllowlist", "Network", "parse_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(raw: str | None) -> Address | None:
    """The address a client address string names (IPv4-mapped IPv6 as IPv4), or None when
    it is not one (a proxy's header can carry anything)."""
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class AddressAllowlist:
    """A set of networks; `address in allowlist` for a client address string."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> AddressAllowlist:
        """`"127.0.0.1, 10.0.0.0/8, 2001:db8::/32"`; ValueError naming a bad entry. A block
        with host bits set (`10.0.0.1/8`) is refused: it is most likely a typo."""
        networks: list[Network] = []
        for entry in filter(None, (part.strip() for part in raw.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or CIDR block ({exc})") from None
        return cls(tuple(networks))

    def __contains__(self, raw: object) -> bool:
        if not self.networks or not isinstance(raw, str):
            return False
        address = parse_address(raw)
        if address is None:
            return False
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)
