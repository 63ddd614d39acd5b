"""A launch's GPUs: which this machine has, where each node goes, and whether they fit — before anything starts.

The launcher never initialises CUDA in its own process: the fork server forks nodes from a process like it, and a
fork of a process that initialised CUDA cannot use CUDA. So the one question it asks about GPUs —
:func:`gpu_inventory` — runs in a short-lived subprocess, and only when the config asks for a GPU (``device``
other than ``cpu``). Each node then initialises its own device after it started (:mod:`gossip.learn.device`).

The memory check is a lower bound, like :mod:`gossip.run.capacity`'s: a node on a GPU holds CUDA's context and
torch's kernels (:data:`CUDA_CONTEXT_BYTES`, an estimate: no GPU was available to measure it), its model a few
times over, and its shard of the dataset. A launch whose nodes cannot fit on their GPUs is refused.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gossip.config import RunConfig
from gossip.errors import ConfigError
from gossip.learn.device import check_gpu_features, place
from gossip.run.capacity import GIB, MIB, MODEL_COPIES, dataset_bytes
from gossip.topology import Topology

__all__ = ["CUDA_CONTEXT_BYTES", "Gpu", "check_devices", "gpu_bytes_per_node", "gpu_inventory", "place_run"]

CUDA_CONTEXT_BYTES = 512 * MIB  # CUDA context + torch's kernels per process (estimate; see the module)

_INVENTORY = """
import json, torch
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append([i, p.name, int(p.total_memory)])
print(json.dumps(gpus))
"""


@dataclass(frozen=True)
class Gpu:
    """One CUDA device of this machine, as torch sees it."""

    index: int
    name: str
    total_bytes: int


@functools.cache
def gpu_inventory(timeout_s: float = 120.0) -> tuple[Gpu, ...]:
    """This machine's CUDA GPUs, asked of torch in a subprocess (the only ``torch.cuda`` call of the launcher).

    None when torch has no CUDA, or the subprocess fails: a launch that wants a GPU is then refused. Asked once
    per launcher process (``--gpus all`` and the launch's check share the answer).
    """
    try:
        done = subprocess.run([sys.executable, "-c", _INVENTORY], capture_output=True, text=True, timeout=timeout_s, check=False)
        rows = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()
    return tuple(Gpu(int(i), str(name), int(total)) for i, name, total in rows)


def gpu_bytes_per_node(params: int, max_degree: int, shard_bytes: int) -> int:
    """GPU memory one node needs at the least: context, model copies (plus one received buffer per neighbour), shard."""
    return CUDA_CONTEXT_BYTES + 4 * params * (MODEL_COPIES + max_degree) + shard_bytes


def place_run(cfg: RunConfig, topology: Topology, inventory: Callable[[], Sequence[Gpu]] | None = None) -> RunConfig:
    """:func:`check_devices` for a launch of ``topology``: each node's GPU share from the config's numbers.

    ``inventory``: :func:`gpu_inventory` unless given (looked up when called, so a test can replace it).
    """
    if cfg.training.device == "cpu":
        return cfg
    from gossip.data.datasets import dataset_shape_of
    from gossip.learn.models import parameter_count_of

    shape, classes, train, test = dataset_shape_of(cfg)
    params = parameter_count_of(cfg, shape, classes)
    shard = dataset_bytes(shape, math.ceil(train / topology.n) + test)  # its training shard and the whole test set
    per_node = gpu_bytes_per_node(params, max(topology.degrees(), default=0), shard)
    return check_devices(cfg, topology.n, per_node, inventory or gpu_inventory)


def check_devices(
    cfg: RunConfig,
    nodes: int,
    per_node_bytes: int,
    inventory: Callable[[], Sequence[Gpu]] = gpu_inventory,
) -> RunConfig:
    """The config with its devices resolved for this machine, or ConfigError when its GPUs are missing or too small.

    ``device = "cpu"``: returned as it is, without asking for the inventory. ``auto``: cpu when there is no GPU,
    else every node placed over all GPUs (or over ``gpus``). ``cuda``/``cuda:N``: refused without a GPU, with a
    GPU index this machine lacks, or when the nodes placed on one GPU need more than its memory.
    """
    training = cfg.training
    if training.device == "cpu":
        return cfg
    gpus = tuple(inventory())
    if training.device == "auto" and not gpus:
        return dataclasses.replace(cfg, training=dataclasses.replace(training, device="cpu", gpus=()))
    wanted = "cuda" if training.device == "auto" else training.device
    if not gpus:
        raise ConfigError(
            f"[training] device = {training.device!r} but this machine has no CUDA GPU (torch sees none); use device = 'cpu' or 'auto'"
        )
    placed = training.gpus or (tuple(g.index for g in gpus) if training.device == "auto" else ())
    counts = collections.Counter(_indexed(place(i, wanted, placed)) for i in range(nodes))
    by_name = {f"cuda:{g.index}": g for g in gpus}
    for name, count in sorted(counts.items()):
        gpu = by_name.get(name)
        if gpu is None:
            raise ConfigError(f"node placement asks for {name} but this machine has {len(gpus)} CUDA GPU(s) (cuda:0..cuda:{len(gpus) - 1})")
        need = count * per_node_bytes
        if need > gpu.total_bytes:
            raise ConfigError(
                f"{count} nodes on {name} ({gpu.name}) need about {_size(need)} of GPU memory ({_size(per_node_bytes)} each) "
                f"but it has {_size(gpu.total_bytes)}: use fewer nodes per GPU (--gpus 0,1,...) or a smaller model"
            )
    resolved = dataclasses.replace(cfg, training=dataclasses.replace(training, device=wanted, gpus=placed))
    check_gpu_features(resolved)
    return resolved


def _indexed(device: str) -> str:
    return "cuda:0" if device == "cuda" else device


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"
