"""CHOCO-gossip's math (Koloskova, Stich, Jaggi 2019): top-k of a difference, its application, the mix over public copies.

"Decentralized Stochastic Optimization and Gossip Algorithms with Compressed Communication" (ICML
2019). The protocol around it — which copies a node holds, when it sends in full, what a lost message
costs — is :mod:`gossip.node.choco`; here are the three tensor operations sender and receivers must run
identically for their copies to stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from gossip.ids import NodeId

__all__ = ["apply_delta", "copies_pull", "top_k"]


def top_k(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest-magnitude entries of ``d``: int32 indices in increasing order, and their values."""
    k = max(0, min(k, d.numel()))
    _, idx = torch.topk(d.abs(), k, sorted=False)
    idx, _ = torch.sort(idx)
    return idx.to(torch.int32), d[idx].contiguous()


def apply_delta(target: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> None:
    """target[indices] += values: the one operation sender and receivers run, so their copies stay bit-identical."""
    target.index_add_(0, indices.to(torch.int64), values)


def copies_pull(public: torch.Tensor, copies: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
    """Σ_j W_ij (x̂_j − x̂_i) over the neighbours' copies, summed in sorted order (the same sums whatever the arrival order).

    The step CHOCO adds to the model, scaled by γ; its norm is the compressed analogue of D-SGD's consensus distance.
    """
    pull = torch.zeros_like(public)
    for j in sorted(copies):
        pull.add_(copies[j] - public, alpha=weights[j])
    return pull
