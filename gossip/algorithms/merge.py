"""The single global merge's math: the exact average, the members every node agrees on, and re-estimated BatchNorm statistics.

Deterministic by construction, so that every node that averages the same set gets the same bits. The
protocol that gathers the models and the views (and why it is built the way it is) is :mod:`gossip.node.merge`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from gossip.ids import NodeId

__all__ = ["agreed_members", "exact_average", "recalibrate_norm_stats", "stat_mask_of"]


def exact_average(vectors: Mapping[NodeId, torch.Tensor]) -> torch.Tensor:
    """The mean of ``vectors`` summed in sorted id order in float64, rounded once to float32.

    Deterministic: elementwise IEEE additions in a fixed order have one correct result, whatever the
    CPU or its vector width, so every node that averages the same set gets the same bits.
    """
    if not vectors:
        raise ValueError("nothing to average")
    order = sorted(vectors)
    acc = vectors[order[0]].to(torch.float64).clone()
    for j in order[1:]:
        acc.add_(vectors[j].to(torch.float64))
    return acc.div_(len(order)).to(torch.float32)


def agreed_members(own: frozenset[NodeId], views: Mapping[NodeId, frozenset[NodeId]]) -> frozenset[NodeId]:
    """The merge set: our view intersected with every view we received (every member is held by all)."""
    members = own
    for view in views.values():
        members = members & view
    return members


@torch.no_grad()
def recalibrate_norm_stats(module: nn.Module, x: torch.Tensor, batch_size: int, batches: int) -> int:
    """Re-estimate BatchNorm running statistics in place on ``batches`` batches of ``x`` (in order, cycling).

    Cumulative average (momentum None), as ``torch.optim.swa_utils.update_bn``. Returns the number of
    batches used (0 when the module has no BatchNorm or there is too little data).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    size = min(batch_size, len(x))
    if not norms or size < 2:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    start = 0
    for _ in range(batches):
        if start + size > len(x):
            start = 0
        module(x[start : start + size])
        start += size
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    module.train(was_training)
    return batches


def stat_mask_of(specs: Iterable[Any], numel: int) -> torch.Tensor:
    """A boolean mask over the flat vector, True on the elements of the given specs."""
    mask = torch.zeros(numel, dtype=torch.bool)
    for s in specs:
        mask[s.offset : s.stop] = True
    return mask
