"""Will a run fit in this machine's memory? Checked before anything starts.

``gossip launch -n 1000 --spawn`` on a laptop would start a thousand processes of ~165 MiB each and drive the
machine into swap or the OOM killer, taking the user's other work with it; a slip of the keyboard
(``-n 100000``) is worse. The launcher and ``gossip simulate`` estimate what the run needs and refuse,
in one line, a run that cannot fit in the memory available now — they never guess low on purpose, so
a run they accept may still be tight, but one they refuse would not have fitted.

The figures are measured, not modelled: a node process of the default run (MNIST-1D MLP, ring) has a
proportional set size of 165–168 MiB (8-node ring, ``/proc/PID/smaps_rollup``; shared library pages are counted
once across processes there, unlike RSS), of which ~157 MiB is its own heap (torch's and Python's).
A node forked from the launcher's fork server (the default, :mod:`gossip.run.forkserver`) shares the
server's pages (torch, gossip's modules) until it writes them: its private memory (USS: Private_Clean +
Private_Dirty) was 20 MiB in a 16-node run, the server's RSS 225 MiB, paid once. The estimate takes 32
MiB per forked node — Python's reference counting copies a shared page the first time it touches an
object on it, so a node's private share can grow past what a short run shows.
Above that a node holds a few copies of its model: the vector, gradients, the optimiser's momentum,
the mix buffer, a snapshot, and one received model per neighbour; and the run's whole dataset (a node
reads the run directory's data.npz, as the launcher holds it while preparing). The callers take the
parameter count and the dataset's size from the config's numbers (:func:`gossip.learn.models.parameter_count`,
:func:`gossip.data.datasets.dataset_shape`), so nothing proportional to a mistyped size is allocated
before the check refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gossip.errors import ConfigError

if TYPE_CHECKING:
    from gossip.config import RunConfig

__all__ = [
    "FORKED_NODE_BYTES",
    "FORK_SERVER_BYTES",
    "NODE_BASE_BYTES",
    "available_bytes",
    "check_launch_fits",
    "check_node_config_fits",
    "check_node_fits",
    "check_simulation_fits",
    "dataset_bytes",
    "launch_bytes",
    "simulation_bytes",
]

MIB = 1 << 20
GIB = 1 << 30
NODE_BASE_BYTES = 160 * MIB  # a spawned node process before its model's copies (measured: Pss 165–168 MiB with the default 15k model)
FORKED_NODE_BYTES = 32 * MIB  # a forked node's own pages before its model's copies (measured: USS 20 MiB)
FORK_SERVER_BYTES = 240 * MIB  # the fork server, once per launch (measured: RSS 225 MiB)
MODEL_COPIES = 5  # vector, gradients, momentum, mix buffer, snapshot: plus one per neighbour
SIMULATION_MODEL_COPIES = 6  # models, gradients, momentum, the mixed models, vmap's temporaries (N × P each)


def dataset_bytes(input_shape: tuple[int, ...], samples: int) -> int:
    """A dataset of ``samples`` float32 inputs of ``input_shape`` with int64 labels, in memory."""
    return samples * (4 * math.prod(input_shape) + 8)


def launch_bytes(nodes: int, params: int, max_degree: int, *, spawn: bool = False, data: int = 0) -> int:
    """What ``nodes`` node processes of a ``params``-parameter float32 model need together, at the least:
    forked from one fork server (the default) or, with ``spawn``, each its own interpreter. ``data``: the
    dataset's bytes, held by every node and by the launcher."""
    return nodes * _node_bytes(params, max_degree, spawn, data) + (0 if spawn else FORK_SERVER_BYTES) + data


def _node_bytes(params: int, max_degree: int, spawn: bool, data: int = 0) -> int:
    return (NODE_BASE_BYTES if spawn else FORKED_NODE_BYTES) + 4 * params * (MODEL_COPIES + max_degree) + data


def simulation_bytes(nodes: int, params: int, data: int = 0) -> int:
    """What ``gossip simulate`` needs: every node's model several times over, the dense N×N mixing matrix
    (float64 while it is built, float32 in use), and the dataset once."""
    return 4 * nodes * params * SIMULATION_MODEL_COPIES + 12 * nodes * nodes + data


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemAvailable`` (what can be allocated without swapping), or ``None`` where the kernel does not say."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_launch_fits(
    nodes: int, params: int, max_degree: int, *, spawn: bool = False, data: int = 0, available: int | None = None
) -> None:
    """Raise :class:`ConfigError` when ``nodes`` node processes cannot fit in the memory available."""
    need = launch_bytes(nodes, params, max_degree, spawn=spawn, data=data)
    server = "" if spawn else f", and {_size(FORK_SERVER_BYTES)} for their fork server"
    _refuse_beyond(
        need,
        available,
        lambda have: (
            f"{nodes} node processes need about {_size(need)} of memory ({_size(_node_bytes(params, max_degree, spawn, data))} each{server}) but this machine has "
            f"{_size(have)} available: use fewer nodes, or spread them over hosts (gossip deploy compose|k8s)"
        ),
    )


def check_simulation_fits(nodes: int, params: int, *, data: int = 0, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when a simulation of ``nodes`` models cannot fit in the memory available."""
    need = simulation_bytes(nodes, params, data)
    _refuse_beyond(
        need,
        available,
        lambda have: (
            f"simulating {nodes} nodes of {params:,} parameters needs about {_size(need)} of memory but this machine has {_size(have)} available: use fewer nodes"
        ),
    )


def check_node_config_fits(cfg: RunConfig) -> None:
    """Refuse, from the config's numbers, a dataset and model this node could not hold, before it loads or builds either."""
    from gossip.data.datasets import dataset_shape
    from gossip.data.source import is_shipped
    from gossip.learn.models import parameter_count

    if not is_shipped(cfg.data.dataset):  # a plug-in's sizes are known only by running its loader, which the node does next
        return
    shape, classes, train, test = dataset_shape(cfg.data.dataset, **cfg.data.dataset_options())
    check_node_fits(parameter_count(cfg.model.name, shape, classes, **cfg.model.build_options()), dataset_bytes(shape, train + test))


def check_node_fits(params: int, data: int, *, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when one running node cannot also hold its model's copies and the dataset.

    For ``gossip node`` on its own (Compose, Kubernetes): its process already exists, so only what it is
    about to allocate counts.
    """
    need = 4 * params * MODEL_COPIES + data
    _refuse_beyond(
        need,
        available,
        lambda have: (
            f"this node's model ({params:,} parameters) and dataset need about {_size(need)} of memory but this machine has "
            f"{_size(have)} available: use a smaller model or dataset"
        ),
    )


def _refuse_beyond(need: int, available: int | None, message: Callable[[int], str]) -> None:
    """Raise ``message(have)`` when ``need`` exceeds what is available (``available``, else MemAvailable); unknown: pass."""
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise ConfigError(message(have))


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"
