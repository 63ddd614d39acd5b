"""``[membership]``: an open network, which nodes join and leave while it runs (``gossip node --join``).

Off by default: a fixed topology is what makes an experiment repeatable. On, each node keeps a partial view of
the members and ``degree`` to ``max_degree`` neighbours of its own choosing (``gossip.topology.membership``);
``[topology] nodes`` is then the number of data shards, and member ``i`` trains on shard ``i mod nodes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.addresses import AddressPolicy
from gossip.config.fields import DAY_S, check, check_fields, integer, real
from gossip.errors import ConfigError

__all__ = ["MembershipConfig"]


@dataclass(frozen=True)
class MembershipConfig:
    """How members find each other, how many neighbours each keeps, and whom they may dial."""

    enabled: bool = False  # true: an open network (async gossip only); false: the topology's fixed neighbours
    degree: int = integer(3, 1, 16)  # neighbours a node asks for (a link is symmetric); at least 2 keeps the links graph connected
    max_degree: int = integer(0, 0, 64)  # links a node accepts before it refuses; 0 = 2 x degree
    view_size: int = integer(8, 2, 64)  # members in a node's partial view (Cyclon's cache)
    shuffle_length: int = integer(4, 1, 16)  # members one shuffle exchanges
    shuffle_period_s: float = real(1.0, 0, DAY_S, lo_open=True)  # how often a node shuffles its view with its oldest entry
    heartbeat_s: float = real(0.5, 0, DAY_S, lo_open=True)  # a heartbeat on every link this often
    failure_timeout_s: float = real(3.0, 0, DAY_S, lo_open=True)  # a neighbour silent this long is declared failed and replaced
    join_timeout_s: float = real(30.0, 0, DAY_S, lo_open=True)  # a newcomer waits this long for its contact and its first models
    # the addresses a peer may tell a node to dial: networks ("10.0.0.0/8"), IP addresses, host names
    allow: tuple[str, ...] = ("127.0.0.0/8",)
    ports: str = "1024-65535"  # and their ports, "LO-HI"

    def __post_init__(self) -> None:
        check_fields(self, "membership")
        if self.max_degree == 0:
            object.__setattr__(self, "max_degree", 2 * self.degree)
        check(self.max_degree >= self.degree, f"[membership] max_degree ({self.max_degree}) must be at least degree ({self.degree})")
        check(
            self.shuffle_length <= self.view_size,
            f"[membership] shuffle_length ({self.shuffle_length}) must be at most view_size ({self.view_size})",
        )
        check(
            self.failure_timeout_s >= 2 * self.heartbeat_s,
            f"[membership] failure_timeout_s ({self.failure_timeout_s:g}) must be at least two heartbeats ({2 * self.heartbeat_s:g} s)",
        )
        check(len(self.allow) >= 1, "[membership] allow must name at least one network or host a member may listen on")
        try:
            self.policy()
        except ValueError as exc:
            raise ConfigError(f"[membership] allow or ports: {exc}") from None

    def policy(self) -> AddressPolicy:
        """The addresses members may be dialled at."""
        return AddressPolicy.of(self.allow, self.ports)
