"""Where a node's model lives, and the copies between host and device that a GPU node makes.

Placement is pure (:func:`place`): node i of a launch with ``gpus = [g0, g1, …]`` runs on ``cuda:g[i mod k]``, so
the launcher can count nodes per GPU without touching CUDA. A node resolves its device itself, in its own
process, after it started (:func:`resolve_device`): a fork server that initialised CUDA would hand every fork a
broken CUDA state, so nothing before the node's own start calls ``torch.cuda``.

On the CPU nothing here copies anything: the model, the shard and what arrives are used where they are.
On a GPU a node copies its model to the host once per send (into a send buffer the pool reuses,
:class:`gossip.net.sendbuffers.SnapshotPool`, pinned so that ZeroMQ sends it without another copy), and every model
it receives to the device once, into a buffer per neighbour that it reuses round after round
(:class:`ReceiveBuffers`). Arriving models are validated (finite, right size) on the host before that copy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

import torch

from gossip.config import RunConfig
from gossip.config.fields import check
from gossip.errors import ConfigError

__all__ = [
    "LossScale",
    "ReceiveBuffers",
    "apply_determinism",
    "check_gpu_features",
    "gpu_memory",
    "local_autocast",
    "place",
    "resolve_device",
    "shard_device",
]

K = TypeVar("K")


class Stepper(Protocol):
    """An optimiser, as far as :class:`LossScale` needs one."""

    def step(self) -> None: ...


# What cuBLAS needs to be deterministic (NVIDIA's documented setting); read when CUDA initialises, so set before.
CUBLAS_WORKSPACE = ":4096:8"


def place(node_id: int, device: str, gpus: Sequence[int]) -> str:
    """The device a node runs on: ``cuda:gpus[node_id mod len(gpus)]`` when ``gpus`` is given, else ``device``.

    Pure: the launcher counts nodes per GPU with it, and a node computes its own placement with it.
    """
    if device == "cpu" or not gpus:
        return device
    return f"cuda:{gpus[node_id % len(gpus)]}"


def resolve_device(node_id: int, device: str, gpus: Sequence[int], *, cuda_count: Callable[[], int] | None = None) -> torch.device:
    """The torch device this node uses, checked; raises ConfigError when it asks for a GPU this machine lacks.

    Called in the node's own process. ``auto`` is cuda when a GPU is there, else cpu. ``cuda_count`` (the number of
    visible GPUs) is asked only when the node wants anything but cpu.
    """
    if device == "cpu":
        return torch.device("cpu")
    count = (cuda_count or _cuda_count)()
    if device == "auto" and count == 0:
        return torch.device("cpu")
    name = place(node_id, "cuda" if device == "auto" else device, gpus)
    if count == 0:
        raise ConfigError(
            f"[training] device = {name!r} but this machine has no CUDA GPU (torch.cuda.is_available() is False); use 'cpu' or 'auto'"
        )
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        raise ConfigError(f"[training] device = {name!r} but this machine has {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def shard_device(device: torch.device, nbytes: int, *, free_bytes: Callable[[], int] | None = None) -> torch.device:
    """Where a node keeps its training shard: on its GPU when it takes at most half the memory free there, else on
    the host (each batch then goes over on its own). The CPU keeps it where it is."""
    if device.type == "cpu":
        return device
    free = free_bytes() if free_bytes is not None else int(torch.cuda.mem_get_info(device)[0])
    return device if nbytes <= free // 2 else torch.device("cpu")


def apply_determinism(enabled: bool, device: torch.device) -> None:
    """``[training] deterministic``: deterministic kernels only (an op without one raises instead of varying).

    CUBLAS_WORKSPACE_CONFIG must be set before cuBLAS starts, so this runs before the model reaches the device.
    """
    if not enabled:
        return
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def local_autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast for a local step's forward pass and loss (``[training] precision``); fp32: nothing at all."""
    dtype = _AUTOCAST.get(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def gpu_memory(device: torch.device) -> tuple[int, int] | None:
    """(bytes in use, peak bytes) that torch allocated on ``device``; None on the CPU."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.memory_allocated(device)), int(torch.cuda.max_memory_allocated(device))


class ReceiveBuffers:
    """The device copies of the models that arrived: one reused buffer per neighbour, so no round allocates one.

    Inactive on the CPU (models are mixed where they arrived); ``always`` turns the copying on for any device,
    which is how a CPU test runs the GPU path.
    """

    def __init__(self, device: torch.device, *, always: bool = False) -> None:
        self.device = device
        self.active = always or device.type != "cpu"
        self._buffers: dict[object, torch.Tensor] = {}
        self.allocations = 0  # buffers ever allocated: one per neighbour in a steady run
        self.seconds = 0.0  # the last round's copies (0 when inactive): the round record's h2d_s

    def to_device(self, received: Mapping[K, torch.Tensor]) -> Mapping[K, torch.Tensor]:
        """``received`` with each model copied host-to-device into its sender's buffer (as it is when inactive)."""
        if not self.active:
            return received
        start = time.perf_counter()
        out: dict[K, torch.Tensor] = {}
        for sender, model in received.items():
            buffer = self._buffers.get(sender)
            if buffer is None or buffer.shape != model.shape:
                buffer = torch.empty(model.shape, dtype=torch.float32, device=self.device)
                self._buffers[sender] = buffer
                self.allocations += 1
            out[sender] = buffer.copy_(model)  # from pageable memory: done when copy_ returns
        self.seconds = time.perf_counter() - start
        return out


class LossScale:
    """fp16's dynamic loss scaling (torch.amp.GradScaler's rule, for any optimiser with ``step()``).

    Why: float16 gradients of small losses underflow to zero. The loss is multiplied by ``scale`` before
    ``backward``, the gradients divided by it after; a step whose gradients are not finite is skipped and the scale
    halved, and after ``grow_every`` good steps it doubles. Off (``precision`` other than fp16): backward, step.
    """

    def __init__(self, enabled: bool, *, scale: float = 2.0**16, grow_every: int = 2000) -> None:
        self.enabled = enabled
        self.scale = scale if enabled else 1.0
        self.grow_every = grow_every
        self.skipped = 0  # steps skipped for gradients that were not finite
        self._good = 0

    def backward_and_step(self, loss: torch.Tensor, optimizer: Stepper, params: Sequence[torch.Tensor]) -> None:
        """``loss.backward()`` then ``optimizer.step()``, with the scaling when enabled."""
        if not self.enabled:
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimizer.step()
            return
        (loss * self.scale).backward()  # type: ignore[no-untyped-call]
        grads = [p.grad for p in params if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            self.scale /= 2
            self._good = 0
            self.skipped += 1
            return
        for g in grads:
            g.div_(self.scale)
        optimizer.step()
        self._good += 1
        if self._good == self.grow_every:
            self.scale *= 2
            self._good = 0


def check_gpu_features(cfg: RunConfig) -> None:
    """Refuse what a node on a GPU does not run yet: only synchronous rounds of whole models mix on the device.

    Async gossip, CHOCO compression, the global merge and the attackers' payloads combine received models with the
    node's own outside :class:`~gossip.node.mixer.Mixer`, on the host; on a GPU they would mix tensors of two devices.
    """
    training = cfg.training
    if training.device == "cpu":
        return
    where = f"[training] device = {training.device!r}"
    check(training.mode == "sync", f"{where} runs synchronous rounds only; set training.mode = 'sync' or device = 'cpu'")
    check(cfg.compression.method == "none", f"{where} mixes whole models; compression.method must be 'none' (or device = 'cpu')")
    check(not cfg.merge.enabled, f"{where}: the global merge runs on the CPU only; disable merge.enabled or use device = 'cpu'")
    check(not cfg.byzantine.nodes, f"{where}: attackers play on the CPU only; empty byzantine.nodes or use device = 'cpu'")
