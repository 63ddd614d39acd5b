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

Beside the tree, the vocabulary of refusals: :class:`RejectReason`, why a node dropped a message, and
:data:`REFUSAL_REASONS`, why it refused a connection. Each value is a metric label; they live here, at
the bottom, because the wire, the transport and the metrics all speak them.
"""

from __future__ import annotations

import enum
import re
import signal
from enum import IntEnum

__all__ = [
    "REFUSAL_REASONS",
    "ConfigError",
    "DataError",
    "ExitCode",
    "GossipError",
    "PeerUnreachable",
    "RejectReason",
    "RunDirError",
    "TopologyError",
    "TransportError",
    "UsageError",
    "WireError",
    "error_text",
    "one_line",
]


class RejectReason(enum.StrEnum):
    """Why a message was dropped. Each value is a metric label; keep the set small and stable."""

    BAD_FRAME_COUNT = "bad_frame_count"  # not header + the payload frames the kind needs
    TOO_LARGE = "too_large"  # header or payload frame larger than allowed
    BAD_HEADER = "bad_header"  # not msgpack, not a map, missing/mistyped field, unknown kind
    BAD_VERSION = "bad_version"  # protocol version we do not speak
    WRONG_RUN = "wrong_run"  # a node of another run (stale process, misconfigured peer)
    UNKNOWN_SENDER = "unknown_sender"  # transport identity is not a node id of this run
    NOT_A_NEIGHBOUR = "not_a_neighbour"  # a node of this run, but not one of our neighbours
    SENDER_MISMATCH = "sender_mismatch"  # header src differs from who the transport says sent it
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"  # another model architecture
    STALE_ROUND = "stale_round"  # for a round we already finished (a late message)
    FUTURE_ROUND = "future_round"  # too far ahead of our round to buffer
    BAD_DTYPE = "bad_dtype"  # payload dtype outside the allow-list
    BAD_PAYLOAD_SIZE = "bad_payload_size"  # element count or byte length differs from our model's
    NON_FINITE = "non_finite"  # NaN or infinity in the payload
    RATE_LIMITED = "rate_limited"  # the sender exceeds its message budget
    UNAUTHENTICATED = "unauthenticated"  # CURVE handshake with a key that is not a neighbour's
    UNEXPECTED = "unexpected"  # well formed, but not called for: merge disabled, a round we do not wait in
    BAD_MASS = "bad_mass"  # a push-sum mass that is not a finite number in (0, nodes]
    BAD_SCALE = "bad_scale"  # int8 payload: a negative block scale
    BAD_INDEX = "bad_index"  # delta: an index out of range, or indices not strictly increasing
    BAD_MEMBER = "bad_member"  # membership: a malformed member entry, a repeated id, or another's entry for us or the sender
    ADDRESS_NOT_ALLOWED = "address_not_allowed"  # membership: a member address outside the run's [membership] allow-list
    TOO_MANY_MEMBERS = "too_many_members"  # membership: a list of more members than one message may name
    JOIN_FLOOD = "join_flood"  # membership: more joins than the node takes in per second
    BAD_SLOT = "bad_slot"  # same host: a shared-memory reference or ring that is not one the sender handed over
    TORN_SLOT = "torn_slot"  # same host: the slot was being written, or rewritten, when its reference was read


# Each value is a label of gossip_connections_refused_total{reason=...}
REFUSAL_REASONS = (
    "too_many",  # the node holds max_connections already
    "too_many_from_address",  # the peer's address holds max_per_address already
    "unfinished_message",  # it gave libzmq more than max_unfinished_bytes without finishing a message
    "handshake_timeout",  # no ZMTP handshake within handshake_timeout_s (closed by libzmq)
    "descriptors",  # the kernel refused the accept: the process's descriptor table is full
)


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(message: str) -> str:
    """``message`` with control characters escaped: whatever a user typed, an error stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)


def error_text(exc: BaseException) -> str:
    """An exception as the one line after ``gossip: error:`` (an OSError names its file), control characters escaped."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return one_line(f"{exc.filename}: {exc.strerror or exc}")
    return one_line(str(exc))
