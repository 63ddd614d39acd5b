"""Model ↔ one flat parameter buffer: which tensors travel, where each lives, and the model fingerprint.

Why one buffer: a model then leaves as a single wire frame, aggregation is a handful of vectorised
ops over one vector (no Python loop over parameters), and mixing is done in place. After
:func:`flatten_` every floating parameter and floating buffer (BatchNorm running statistics) of the
module is a *view* into ``FlatModel.vector``; the optimiser, created afterwards, updates the vector
through those views. ``num_batches_tracked`` and other integer buffers stay local: averaging a
counter means nothing.

The fingerprint (blake2b-128 over the ordered ``(name, kind, dtype, shape)`` list, after hivemind's
schema hash) travels in every header. A receiver never builds a shape from the network: if the
fingerprint matches, the payload layout is our own.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["FlatModel", "Layout", "TensorSpec", "flatten_", "model_hash"]

TensorKind = Literal["weight", "bias", "norm", "norm_stat"]


@dataclass(frozen=True)
class TensorSpec:
    """Where one named tensor lives in the flat vector, and what kind of tensor it is."""

    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int
    kind: TensorKind

    @property
    def stop(self) -> int:
        return self.offset + self.numel


@dataclass(frozen=True)
class Layout:
    """The ordered schema of a flat vector; equal layouts have equal fingerprints."""

    specs: tuple[TensorSpec, ...]
    numel: int
    fingerprint: bytes  # 16 bytes

    def of_kind(self, *kinds: TensorKind) -> tuple[TensorSpec, ...]:
        """The tensors of the given kinds, in vector order."""
        return tuple(s for s in self.specs if s.kind in kinds)

    def learnable(self) -> tuple[TensorSpec, ...]:
        """Parameters (weights, biases, norm affine), not running statistics."""
        return self.of_kind("weight", "bias", "norm")

    def views(self, vector: torch.Tensor, specs: Iterable[TensorSpec] | None = None) -> Iterator[tuple[TensorSpec, torch.Tensor]]:
        """Shaped views of ``vector`` for each spec (no copies)."""
        for spec in self.specs if specs is None else specs:
            yield spec, vector[spec.offset : spec.stop].view(spec.shape)


@dataclass(frozen=True)
class FlatModel:
    """A module whose floating state lives in one contiguous float32 vector.

    Frozen: the vector is updated in place and never replaced, which is what keeps the module's
    parameters (views of it) and ``wire_bytes`` (a view made once) pointing at the live model.
    """

    module: nn.Module
    vector: torch.Tensor
    layout: Layout

    @functools.cached_property
    def wire_bytes(self) -> memoryview:
        """The vector's bytes, viewed once for the model's life: what a node sends of its live model.

        ``gossip.net.wire.encode`` takes it as is, so a round's send makes no torch call (detach, reshape,
        ``numpy()`` and the byte view cost more than the rest of ``encode`` on a cold cache:
        ``bench/transport.py``). The model is frozen, so the view stays the live vector's.
        """
        return memoryview(self.vector.numpy()).cast("B")  # type: ignore[arg-type]  # numpy arrays export the buffer protocol


def _kind(module: nn.Module, attr: str, is_buffer: bool, tensor: torch.Tensor) -> TensorKind:
    if is_buffer:
        return "norm_stat"
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
        return "norm"
    if tensor.dim() >= 2:
        return "weight"
    return "bias"


def flatten_(module: nn.Module, device: torch.device | None = None) -> FlatModel:
    """Move every floating parameter and buffer of ``module`` into one float32 vector (on ``device``), in place.

    Call it before creating the optimiser. The order is ``named_parameters`` then
    ``named_buffers``, both in module registration order, which is deterministic for a given
    architecture — that is what makes fingerprints comparable across processes.
    """
    entries: list[tuple[nn.Module, str, str, bool, torch.Tensor]] = []
    for mod_name, mod in module.named_modules():
        for attr, p in mod.named_parameters(recurse=False):
            if p.is_floating_point():
                entries.append((mod, attr, _join(mod_name, attr), False, p))
    for mod_name, mod in module.named_modules():
        for attr, b in mod.named_buffers(recurse=False):
            if b is not None and b.is_floating_point():
                entries.append((mod, attr, _join(mod_name, attr), True, b))

    specs: list[TensorSpec] = []
    offset = 0
    for mod, attr, name, is_buffer, tensor in entries:
        n = tensor.numel()
        specs.append(TensorSpec(name, tuple(tensor.shape), offset, n, _kind(mod, attr, is_buffer, tensor)))
        offset += n

    vector = torch.empty(offset, dtype=torch.float32, device=device)
    with torch.no_grad():
        for spec, (mod, attr, _name, is_buffer, tensor) in zip(specs, entries, strict=True):
            view = vector[spec.offset : spec.stop].view(spec.shape)
            view.copy_(tensor.detach().to(torch.float32))
            if is_buffer:
                mod._buffers[attr] = view
            else:
                getattr(mod, attr).data = view
    if vector.device.type != "cpu":  # the integer buffers (num_batches_tracked) follow the model to its device
        for mod in module.modules():
            for attr, b in mod.named_buffers(recurse=False):
                if b is not None and not b.is_floating_point():
                    mod._buffers[attr] = b.to(vector.device)
    layout = Layout(tuple(specs), offset, _fingerprint(specs))
    return FlatModel(module, vector, layout)


def _join(prefix: str, attr: str) -> str:
    return f"{prefix}.{attr}" if prefix else attr


def _fingerprint(specs: Iterable[TensorSpec]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for s in specs:
        h.update(f"{s.name}|{s.kind}|float32|{'x'.join(map(str, s.shape))};".encode())
    return h.digest()


def model_hash(vector: torch.Tensor) -> str:
    """Hex blake2b-128 of the exact bytes of a parameter vector: equal hashes = bit-identical models."""
    data = vector.detach().cpu().contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()
