"""Will a run fit in this machine's memory? Checked before anything starts.

``gossip launch -n 1000 --spawn`` on a laptop would start a thousand processes of ~165 MiB each and drive the
machine into swap or the OOM killer, taking the user's other work with it; a slip of the keyboard
(``-n 100000``) is worse. The launcher and ``gossip simulate`` estimate what the run needs and refuse,
in one line, a run that cannot fit in the memory available now — they never guess low on purpose, so
a run they accept may still be tight, but one they refuse would not have fitted.

The figures are measured, not modelled: a node process of the default run (MNIST-1D MLP, ring) has a
proportional set size of 165–168 MiB (8-node ring, ``/proc/PID/smaps_rollup``; shared library pages are counted
once across processes there, unlike RSS), of which ~157 MiB is its own heap (torch's and Python's).
A node forked from the launcher's fork server (the default, :mod:`gossip.forkserver`) shares the
server's pages (torch, gossip's modules) until it writes them: its private memory (USS: Private_Clean +
Private_Dirty) was 20 MiB in a 16-node run, the server's RSS 225 MiB, paid once. The estimate takes 32
MiB per forked node — Python's reference counting copies a shared page the first time it touches an
object on it, so a node's private share can grow past what a short run shows.
Above that a node holds a few copies of its model: the vector, gradients, the optimiser's momentum,
the mix buffer, a snapshot, and one received model per neighbour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gossip.errors import ConfigError

__all__ = ["FORK_SERVER_BYTES", "FORKED_NODE_BYTES", "NODE_BASE_BYTES", "available_bytes", "check_launch_fits", "check_simulation_fits", "launch_bytes", "simulation_bytes"]

MIB = 1 << 20
GIB = 1 << 30
NODE_BASE_BYTES = 160 * MIB  # a spawned node process before its model's copies (measured: Pss 165–168 MiB with the default 15k model)
FORKED_NODE_BYTES = 32 * MIB  # a forked node's own pages before its model's copies (measured: USS 20 MiB)
FORK_SERVER_BYTES = 240 * MIB  # the fork server, once per launch (measured: RSS 225 MiB)
MODEL_COPIES = 5  # vector, gradients, momentum, mix buffer, snapshot: plus one per neighbour
SIMULATION_MODEL_COPIES = 6  # models, gradients, momentum, the mixed models, vmap's temporaries (N × P each)


def launch_bytes(nodes: int, params: int, max_degree: int, *, spawn: bool = False) -> int:
    """What ``nodes`` node processes of a ``params``-parameter float32 model need together, at the least:
    forked from one fork server (the default) or, with ``spawn``, each its own interpreter."""
    return nodes * _node_bytes(params, max_degree, spawn) + (0 if spawn else FORK_SERVER_BYTES)


def _node_bytes(params: int, max_degree: int, spawn: bool) -> int:
    return (NODE_BASE_BYTES if spawn else FORKED_NODE_BYTES) + 4 * params * (MODEL_COPIES + max_degree)


def simulation_bytes(nodes: int, params: int) -> int:
    """What ``gossip simulate`` needs: every node's model several times over, and the dense N×N mixing matrix
    (float64 while it is built, float32 in use)."""
    return 4 * nodes * params * SIMULATION_MODEL_COPIES + 12 * nodes * nodes


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemAvailable`` (what can be allocated without swapping), or ``None`` where the kernel does not say."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_launch_fits(nodes: int, params: int, max_degree: int, *, spawn: bool = False, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when ``nodes`` node processes cannot fit in the memory available."""
    need = launch_bytes(nodes, params, max_degree, spawn=spawn)
    server = "" if spawn else f", and {_size(FORK_SERVER_BYTES)} for their fork server"
    _refuse_beyond(need, available, lambda have: (
        f"{nodes} node processes need about {_size(need)} of memory ({_size(_node_bytes(params, max_degree, spawn))} each{server}) but this machine has "
        f"{_size(have)} available: use fewer nodes, or spread them over hosts (gossip deploy compose|k8s)"
    ))


def check_simulation_fits(nodes: int, params: int, *, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when a simulation of ``nodes`` models cannot fit in the memory available."""
    need = simulation_bytes(nodes, params)
    _refuse_beyond(need, available, lambda have: (
        f"simulating {nodes} nodes of {params:,} parameters needs about {_size(need)} of memory but this machine has {_size(have)} available: use fewer nodes"
    ))


def _refuse_beyond(need: int, available: int | None, message: Callable[[int], str]) -> None:
    """Raise ``message(have)`` when ``need`` exceeds what is available (``available``, else MemAvailable); unknown: pass."""
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise ConfigError(message(have))


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"
