"""The one exception tree of gossip: what can go wrong, and who should see it.

::

    GossipError                 base: anything gossip raises on purpose
    ├── ConfigError             a user mistake in config, flags or environment  (CLI: one line, exit 2)
    │   └── UsageError          a command-line value the config cannot check: a flag, a node id, a path
    ├── TopologyError           a graph we refuse: unknown spec, bad file, disconnected, self loops
    ├── DataError               a dataset we cannot load or split as asked
    ├── RunDirError             a run directory that is missing or holds no run (gossip report)
    ├── WireError(reason)       a message that failed validation; carries a RejectReason
    └── TransportError          sockets: address in use, bad endpoint
        └── PeerUnreachable     neighbours that did not answer before a deadline

User mistakes (every class above but ``WireError``, which never leaves a node): the CLI prints
``gossip: error: <message>`` and exits with code 2, never a traceback. Anything else is a bug and keeps
its traceback. A ``TransportError`` or ``OSError`` raised while a node runs (after it started its work)
is not the user's: one line too, but exit 1, a runtime failure (see :class:`ExitCode`).
"""

from __future__ import annotations

import signal
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gossip.net.wire import RejectReason

__all__ = [
    "ConfigError",
    "DataError",
    "ExitCode",
    "GossipError",
    "PeerUnreachable",
    "RunDirError",
    "TopologyError",
    "TransportError",
    "UsageError",
    "WireError",
]


class GossipError(Exception):
    """Base class of every error gossip raises on purpose."""


class ConfigError(GossipError):
    """Invalid configuration: a bad key, value, flag or environment override."""


class UsageError(ConfigError):
    """A malformed command-line value: flags that exclude each other, a node id, an output path already taken."""


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


class ExitCode(IntEnum):
    """How a gossip process ends: the one table the node daemon, the fork server and the launcher share.

    ====  ===========  =============================================================================
    code  name         meaning (for ``gossip node``; ``gossip launch``: the same, for the run)
    ====  ===========  =============================================================================
    0     FINISHED     every round ran (launch: every node finished; with ``--keep-going``, every
                       node that did not die or get stopped)
    1     FAILED       a runtime failure: a crash, a socket or file error (a port taken, descriptors
                       exhausted), neighbours that never answered; a restart may cure it
    2     USAGE        a user mistake found before any work started (flag, config, topology, data,
                       a checkpoint of another model): a restart would fail the same way
    3     DIVERGED     the node's model stopped being finite (usually too high a learning rate): a
                       restart from its checkpoint would diverge again
    130   INTERRUPTED  stopped by SIGINT (Ctrl-C) before the last round
    143   TERMINATED   stopped by SIGTERM before the last round
    ====  ===========  =============================================================================

    A node killed by a signal it does not handle (SIGKILL, SIGSEGV) has no code of its own: the launcher
    sees minus the signal, as :class:`subprocess.Popen` reports it.
    """

    FINISHED = 0
    FAILED = 1
    USAGE = 2
    DIVERGED = 3
    INTERRUPTED = 130
    TERMINATED = 143

    @classmethod
    def stopped_by(cls, signum: int) -> ExitCode:
        """The code of a node stopped by ``signum`` (SIGINT or SIGTERM) before it finished: 128 + the signal, as a shell reports it."""
        return cls.INTERRUPTED if signum == signal.SIGINT else cls.TERMINATED
