"""Self-centred clipping (ClippedGossip): gossip in which no neighbour can pull a node further than τ.

He, Karimireddy & Jaggi 2022, "Byzantine-robust decentralized learning via ClippedGossip"
(arXiv 2202.01545; first titled "... via self-centered clipping")::

    x_i ← x_i + Σ_j W_ij · clip(x_j − x_i, τ_i),    clip(u, τ) = u · min(1, τ / ‖u‖)

over the neighbours that arrived (a missing neighbour's weight stays on the node, exactly as in
D-SGD). It keeps the topology's mixing weights and only bounds each neighbour's pull, so with
honest neighbours it is plain gossip, and a Byzantine neighbour b moves the node by at most
W_ib · τ. Breakdown: no count bound; the paper proves convergence to an O(δ_max ζ² / γ²)
neighbourhood of a stationary point, where δ_max is the largest Byzantine weight Σ_b W_ib at an
honest node and γ the spectral gap — robustness needs that weight small relative to the gap.
Cost O(d P) for d arrivals, the same as gossip (one norm per neighbour).

The radius τ_i is fixed (``clip_tau > 0``; the authors ran 0.1, 1 and 10) or adaptive:

- ``"he"``: the radius of He et al.'s analysis, τ_i = sqrt( Σ_{j honest} W_ij ‖x_j − x_i‖² / δ_i ),
  made practical as in Gaucher et al.'s reproduction (``renaudgaucher/Byzantine-Robust-Gossip``,
  ``aggregators/robust_gossip.py::cs_he``): the node cannot know who is honest, so it trusts the
  inputs nearest to itself (its own model included, at distance 0) up to a total weight of
  1 − δ_i, where δ_i is the weight of the f heaviest neighbours that arrived. We include the input
  that brings the total exactly to 1 − δ_i (the formula's honest set); Gaucher et al.'s code
  stops just before it. δ_i = 0 (f = 0) means no clipping.
- ``"second-largest"``: the authors' code (``SelfCenteredClipping`` with ``tau=None`` in
  ``epfml/byzantine-robust-decentralized-optimizer``): τ_i = the second-largest neighbour distance,
  so only the farthest neighbour is ever clipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gossip.aggregation.robust import Report, no_report
from gossip.ids import NodeId

__all__ = ["ClippedGossip", "clip_rows", "he_radius", "self_centred_clipping"]


def clip_rows(diffs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each row of ``diffs`` to norm at most ``tau``; returns the clipped rows and which were clipped."""
    norms = torch.linalg.vector_norm(diffs, dim=1)
    clipped = norms > tau
    scale = torch.where(clipped, tau / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.ones_like(norms))
    return diffs * scale[:, None], clipped


def self_centred_clipping(local: torch.Tensor, neighbours: torch.Tensor, weights: torch.Tensor, tau: float) -> tuple[torch.Tensor, int]:
    """x_i + Σ_j W_ij clip(x_j − x_i, τ) for the ``(d, P)`` neighbour stack; returns it and how many were clipped."""
    if neighbours.shape[0] == 0:
        return local.clone(), 0
    clipped, mask = clip_rows(neighbours - local, tau)
    return local + (weights.to(local.dtype)[:, None] * clipped).sum(dim=0), int(mask.sum())


def he_radius(distances: torch.Tensor, weights: torch.Tensor, self_weight: float, byzantine_weight: float) -> float:
    """He et al.'s adaptive radius over the inputs nearest to the node, up to a total weight 1 − δ.

    ``distances`` and ``weights`` are the arrived neighbours'; the node itself is an input at
    distance 0 with ``self_weight``. Returns ``inf`` (no clipping) when δ = 0.
    """
    if byzantine_weight <= 0:
        return math.inf
    d = torch.cat([distances.new_zeros(1), distances]).to(torch.float64)
    w = torch.cat([weights.new_tensor([self_weight]), weights]).to(torch.float64)
    order = torch.argsort(d, stable=True)
    cumulative = torch.cumsum(w[order], dim=0)
    trusted = order[cumulative <= cumulative[-1] - byzantine_weight + 1e-9]
    return math.sqrt(float((w[trusted] * d[trusted].square()).sum()) / byzantine_weight)


@dataclass(frozen=True)
class ClippedGossip:
    """Self-centred clipping with a fixed (``tau > 0``) or adaptive (``tau == 0``) radius; see the module."""

    tau: float = 0.0
    rule: str = "he"  # adaptive radius: "he" | "second-largest"
    f: int = 1  # Byzantine neighbours to budget for in the "he" radius
    report: Report = no_report

    def radius(self, distances: torch.Tensor, weights: torch.Tensor, self_weight: float) -> float:
        """The clipping radius for this round's neighbour distances and weights."""
        if self.tau > 0:
            return self.tau
        if self.rule == "second-largest":
            if distances.numel() < 2:
                return math.inf
            return float(distances.topk(2).values[1])
        delta = float(weights.topk(min(self.f, weights.numel())).values.sum()) if weights.numel() else 0.0
        return he_radius(distances, weights, self_weight, delta)

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        if not received:
            return local.clone()
        ids = sorted(received)
        neighbours = torch.stack([received[j] for j in ids])
        w = torch.tensor([weights[j] for j in ids], dtype=torch.float64)
        distances = torch.linalg.vector_norm(neighbours - local, dim=1)
        tau = self.radius(distances, w, 1.0 - float(w.sum()))
        out, clipped = self_centred_clipping(local, neighbours, w, tau)
        self.report(clipped, "clipped")
        return out
