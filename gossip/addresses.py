"""The addresses a run lets a node dial when peers tell it where other members are.

In an open network (``[membership] enabled``) nodes learn each other's addresses from each other: every
address a node dials came from a peer, so it is hostile input. :class:`AddressPolicy` is the run's
allow-list: ``tcp://HOST:PORT`` only, HOST an IP literal inside one of the allowed networks or one of the
allowed host names, PORT inside the allowed range. Nothing else is ever dialled, whatever a peer sends.
It sits on the ground floor because the config checks ``[membership] allow`` with it and the wire
checks every address a peer names with it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_ADDRESS_CHARS", "AddressPolicy", "parse_ports"]

MAX_ADDRESS_CHARS = 96  # "tcp://" + a 63-character host name + ":65535" fits
_HOST_NAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_ENDPOINT = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):([0-9]{1,5})$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ports(text: str) -> tuple[int, int]:
    """``"LO-HI"`` (or one port) as an inclusive range; ValueError when it is not one inside 1..65535."""
    lo, sep, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi if sep else lo)
    except ValueError:
        raise ValueError(f"expected a port range like 7000-7999, got {text[:40]!r}") from None
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"expected a port range inside 1-65535 with its low end first, got {text[:40]!r}")
    return first, last


@dataclass(frozen=True)
class AddressPolicy:
    """The addresses a run allows a node to dial (see the module)."""

    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]
    ports: tuple[int, int]

    @classmethod
    def of(cls, allow: Sequence[str], ports: str) -> AddressPolicy:
        """From ``[membership] allow`` (networks like ``10.0.0.0/8``, addresses, host names) and ``ports``; ValueError names a bad entry."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in allow:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(item.lower()):
                raise ValueError(f"{item[:60]!r} is neither a network (10.0.0.0/8), an IP address nor a host name")
            hosts.add(item.lower())
        return cls(tuple(networks), frozenset(hosts), parse_ports(ports))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be dialled, or ``None`` when it may."""
        if len(address) > MAX_ADDRESS_CHARS:
            return "address too long"
        match = _ENDPOINT.match(address)
        if match is None:
            return "not tcp://HOST:PORT"
        host, port = match.group(1), int(match.group(2))
        if not self.ports[0] <= port <= self.ports[1]:
            return f"port {port} outside {self.ports[0]}-{self.ports[1]}"
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host.lower() in self.hosts:
                return None
            return "host not allowed" if _HOST_NAME.match(host.lower()) else "bad host"
        if any(ip in network for network in self.networks):
            return None
        return "address outside the allowed networks"
