"""D-SGD gossip averaging: x_i ← Σ_j W_ij x_j over the node and the neighbours that arrived.

Lian et al. 2017 (D-PSGD), in the adapt-then-combine order of Koloskova et al. 2020: local steps
first, then one mixing step. Breakdown point 0: a single Byzantine neighbour can move the result
anywhere (see gossip.algorithms.robust for rules that resist). Cost O(d · P) for d arrivals and P
parameters, one fused multiply-add per arrival.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from gossip.ids import NodeId

__all__ = ["DSGD", "mix_in_place", "pull_into", "weighted_average"]


def weighted_average(local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
    """Σ_j W_ij x_j with the self weight ``1 - Σ weights`` absorbing neighbours that did not arrive.

    Computed in the equivalent difference form x_i + Σ_j W_ij (x_j − x_i). Why: in float32 the
    weights of a row do not sum to exactly 1 (three float32 thirds sum to 1 + 3e-8), so the direct
    form inflates the network average a little every round. In the difference form the weights only
    scale differences, which are small and vanish at consensus, and the single rounding of the final
    addition is unbiased: the average of the network is kept to float32 precision over many rounds.
    Summation runs in sorted sender order, so the result does not depend on arrival order.
    """
    if not received:
        return local.clone()
    return pull_into(local, received, weights, torch.empty_like(local), torch.empty_like(local)).add_(local)


def pull_into(
    local: torch.Tensor,
    received: Mapping[NodeId, torch.Tensor],
    weights: Mapping[NodeId, float],
    out: torch.Tensor,
    scratch: torch.Tensor,
) -> torch.Tensor:
    """``out ← Σ_j W_ij (x_j − x_i)``, the D-SGD step's pull, in caller-owned buffers (no allocation).

    ``local + out`` is :func:`weighted_average`'s result bit for bit, and ``‖out‖`` is the node's
    distance to its neighbourhood average: a node that keeps ``out`` and ``scratch`` across rounds
    mixes in place without touching fresh memory (a fresh 4 MB buffer costs page faults every round).
    """
    if not received:
        return out.zero_()
    first, *rest = sorted(received)
    torch.sub(received[first], local, out=out).mul_(weights[first])  # the value of 0 + w·(x_j − x_i), one pass fewer
    for j in rest:
        torch.sub(received[j], local, out=scratch)
        out.add_(scratch, alpha=weights[j])
    return out


# elements a mix works through at a time: 1 MiB of float32 per vector, so the node's block and its neighbours'
# stay in cache across the block's copy, lerps, subtraction and norm (mix_in_place)
BLOCK = 1 << 18


def mix_in_place(
    local: torch.Tensor,
    received: Mapping[NodeId, torch.Tensor],
    weights: Mapping[NodeId, float],
    scratch: torch.Tensor | None = None,
) -> float | None:
    """``local ← local + Σ_j W_ij (x_j − local)`` as one ``lerp_`` per neighbour; returns ‖x_old − x_new‖, the
    step's norm (the consensus distance), or ``None`` (``local`` untouched) if the weights do not allow it.

    Why: :func:`pull_into` plus a final addition is six kernels and sixteen passes over the vector for
    two neighbours; a fused lerp reads two vectors and writes one, so two neighbours cost two kernels
    (bench/overhead.py compares them). Sequential lerps with the coefficients
    ``c_k = w_k / (1 − Σ_{m>k} w_m)`` (sorted sender order) give exactly the weights ``w_k`` and the
    self weight ``1 − Σ w``, and the effective weights of a row sum to 1 whatever their rounding. Each
    lerp is still a difference form (``x + c·(x_k − x)``), so the network average keeps float32
    precision: float32 coefficients make a row's neighbour weights differ in the last bit, which moves
    the mean by ~1e-8 of its value over 1000 rounds on a ring (the direct form: 1e-7; the pull form
    above: 1e-9), below one float32 ulp (tests/unit/test_aggregation_dsgd.py bounds it).
    Needs every partial self weight ``1 − Σ_{m>k} w_m`` positive (self weight or the first weight > 0).

    The work goes block by block (:data:`BLOCK` elements; ``scratch``, at least a block long, keeps the
    block's old values): a model of many megabytes is read from memory once instead of once per kernel,
    and the step never takes a vector of its own. The kernels are elementwise, so the model is bit for
    bit that of whole-vector lerps (a block starts at a multiple of any vector width: the scalar tail is
    the same). The norm sums the blocks' squared float32 norms in float64: off the exact norm by ~1e-6
    of it at a million parameters, where one float32 reduction over the whole vector is off by ~1e-5.
    Each block's norm is taken of old − new as stored, so a finite distance proves both vectors finite.
    """
    order = sorted(received)
    coefficients: list[float] = []
    later = 0.0
    for j in reversed(order):
        remaining = 1.0 - later
        if remaining <= 1e-9:
            return None
        coefficients.append(weights[j] / remaining)
        later += weights[j]
    pairs = [(received[j], c) for j, c in zip(order, reversed(coefficients), strict=True)]
    n = local.numel()
    if scratch is None:
        scratch = torch.empty(min(n, BLOCK), dtype=local.dtype, device=local.device)
    squares = 0.0
    for lo in range(0, n, BLOCK):
        x = local[lo : lo + BLOCK]
        old = scratch[: x.numel()].copy_(x)
        for y, c in pairs:
            x.lerp_(y[lo : lo + BLOCK], c)
        squares += float(torch.linalg.vector_norm(old.sub_(x))) ** 2
    return math.sqrt(squares)


class DSGD:
    """Plain gossip averaging with the topology's mixing weights (the default rule); it can mix in place."""

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        return weighted_average(local, received, weights)

    def mix_(
        self, vector: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float], scratch: torch.Tensor
    ) -> float:
        """``vector ← vector + Σ_j W_ij (x_j − vector)`` with no fresh buffers; returns ‖x_new − x_old‖, the step's norm.

        Sequential lerps (:func:`mix_in_place`, block by block through ``scratch``); weights with no
        positive self share (never with the built-in rules) take the pull form and two buffers more.
        Either way the distance is taken of ``x_old − x_new`` as stored, so a finite one proves both vectors
        finite: the node skips its own finiteness pass over the mixed vector on it (gossip.node.mixer).
        """
        distance = mix_in_place(vector, received, weights, scratch)
        if distance is not None:
            return distance
        before = vector.clone()
        vector.add_(pull_into(vector, received, weights, scratch, torch.empty_like(vector)))
        return float(torch.linalg.vector_norm(before.sub_(vector)))
