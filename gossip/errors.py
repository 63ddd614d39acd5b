"""The one exception tree of gossip: what can go wrong, and who should see it.

::

    GossipError                 base: anything gossip raises on purpose
    ├── ConfigError             a user mistake in config, flags or environment  (CLI: one line, exit 2)
    ├── TopologyError           a graph we refuse: unknown spec, bad file, disconnected, self loops
    ├── DataError               a dataset we cannot load or split as asked
    ├── RunDirError             a run directory that is missing or holds no run (gossip report)
    ├── WireError(reason)       a message that failed validation; carries a RejectReason
    └── TransportError          sockets: address in use, bad endpoint
        └── PeerUnreachable     neighbours that did not answer before a deadline

User mistakes (every class above but ``WireError``, which never leaves a node): the CLI prints
``gossip: error: <message>`` and exits with code 2, never a traceback. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gossip.wire import RejectReason

__all__ = [
    "ConfigError",
    "DataError",
    "GossipError",
    "PeerUnreachable",
    "RunDirError",
    "TopologyError",
    "TransportError",
    "WireError",
]


class GossipError(Exception):
    """Base class of every error gossip raises on purpose."""


class ConfigError(GossipError):
    """Invalid configuration: a bad key, value, flag or environment override."""


class TopologyError(GossipError):
    """A topology spec or file that cannot be used (unknown, malformed, disconnected, self loops)."""


class DataError(GossipError):
    """A dataset that cannot be found, read or partitioned as configured."""


class RunDirError(GossipError):
    """A run directory that does not exist or holds no run records."""


class WireError(GossipError):
    """A message that failed validation. ``reason`` is the label it is counted under."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class TransportError(GossipError):
    """A socket-level problem the user can fix: address in use, unreachable endpoint."""


class PeerUnreachable(TransportError):
    """Neighbours that did not answer before a deadline; ``missing`` names them."""

    def __init__(self, missing: list[int], message: str) -> None:
        self.missing = missing
        super().__init__(message)
