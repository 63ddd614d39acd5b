"""Child processes that cannot outlive the process that started them.

The launcher starts node processes and, with ``--prometheus``, a Prometheus server in new sessions
(so a Ctrl-C on the terminal reaches the launcher alone, which then stops them in order). A new
session also means nothing kills them if the launcher itself is SIGKILLed: the kernel's
parent-death signal closes that gap, and ``gossip launch --resume`` relies on it (every node of a
killed launcher has checkpointed and exited before the run is resumed).
"""

from __future__ import annotations

import ctypes
import signal
from typing import Protocol

__all__ = ["NodeHandle", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGTERM this process when its parent dies (Linux): a :class:`subprocess.Popen` ``preexec_fn``, and the
    first thing a node forked by :mod:`gossip.run.forkserver` does (its parent is then the fork server)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class NodeHandle(Protocol):
    """What the launcher needs of a running node: a local process, a fork server's child, or an ssh session to another host."""

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...
