"""Which addresses a connection may go to: the service's trust boundary, checked in the dialer.

The service connects on behalf of callers it does not trust: without a limit, any caller could
copy a passwordless Redis on the service's own network into its target, or probe the network
port by port. A ``NetworkPolicy`` rides on the ``Endpoint`` (so a cluster's other nodes, found
from the first one, carry it too) and ``dial`` consults it **before any packet is sent**:

- the host name is resolved once and every address it resolves to must be inside an allowed
  network (one outside refuses them all: a name is not half-trusted); the socket then connects
  to an address that was checked, never to the name again (no DNS rebinding between the check
  and the connect). TLS still verifies the original host name.
- an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is checked as the IPv4 address it reaches,
  and networks written that way are read as IPv4 networks; an unspecified address (``0.0.0.0``,
  ``::``, which reach this host) is never allowed.
- with a policy, a connection that fails says only that the endpoint cannot be reached, the
  same words whether it was refused, timed out, answered in something other than RESP or was
  not allowed (``UNREACHABLE``): the caller learns nothing about what listens where. What
  happened goes to the operator's log (the logger of this module).

The CLI connects without a policy (``Endpoint.network`` is None): whoever runs it can reach
those addresses anyway, and sees the real reason a connection failed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from cachemigrate.errors import ConfigError

__all__ = ["UNREACHABLE", "IPAddress", "IPNetwork", "NetworkPolicy", "ip_of", "operator_log"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a caller reads about any endpoint a policy'd connection could not use.
UNREACHABLE = "the instance cannot be reached"

# The operator's log: where the reason a policy'd connection failed is told.
operator_log = logging.getLogger("cachemigrate.network")

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def ip_of(text: str) -> IPAddress:
    """An address as a connection reaches it: an IPv4-mapped IPv6 address as its IPv4 address.

    ValueError when ``text`` is not an IP literal. A zone (``fe80::1%eth0``) is kept.
    """
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _network(text: str) -> IPNetwork:
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ConfigError(f"not a network in CIDR notation (10.0.0.0/8, fd00::/8): {text!r}: {exc}") from None
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
        # ::ffff:10.0.0.0/104 is 10.0.0.0/8 (what a connection to such an address reaches).
        v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network(f"{v4}/{net.prefixlen - 96}")
    return net


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """The networks connections may go to (an address inside any one of them is allowed).

    Build it with ``NetworkPolicy.of(["10.0.0.0/8", "fd00::/8"])`` (ConfigError for a bad CIDR);
    no networks allows nothing.
    """

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> NetworkPolicy:
        return cls(tuple(dict.fromkeys(_network(c) for c in cidrs)))

    def allows(self, address: str | IPAddress) -> bool:
        """Whether a connection to ``address`` (an IP literal) may be made."""
        try:
            ip = ip_of(str(address))
        except ValueError:
            return False
        if ip.is_unspecified:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)

    def covers(self, other: NetworkPolicy) -> bool:
        """Whether every network of ``other`` is inside one of ours (a narrower policy)."""
        return all(self._covers(net) for net in other.networks)

    def _covers(self, net: IPNetwork) -> bool:
        for mine in self.networks:
            if isinstance(net, ipaddress.IPv4Network):
                inside = isinstance(mine, ipaddress.IPv4Network) and net.subnet_of(mine)
            else:
                inside = isinstance(mine, ipaddress.IPv6Network) and net.subnet_of(mine)
            if inside:
                return True
        return False

    def refused(self, addresses: Iterable[str]) -> list[str]:
        """The addresses of ``addresses`` a connection may not go to."""
        return [a for a in addresses if not self.allows(a)]

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "none"

