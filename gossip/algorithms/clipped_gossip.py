"""Self-centred clipping (ClippedGossip): gossip in which no neighbour can pull a node further than τ.

He, Karimireddy & Jaggi 2022, "Byzantine-robust decentralized learning via ClippedGossip"
(arXiv 2202.01545; first titled "... via self-centered clipping")::

    x_i ← x_i + Σ_j W_ij · clip(x_j − x_i, τ_i),    clip(u, τ) = u · min(1, τ / ‖u‖)

over the neighbours that arrived (a missing neighbour's weight stays on the node, exactly as in
D-SGD). It keeps the topology's mixing weights and only bounds each neighbour's pull, so with
honest neighbours it is plain gossip, and a Byzantine neighbour b moves the node by at most
W_ib · τ_i. The paper proves convergence to an O(δ_max ζ² / γ²) neighbourhood of a stationary
point, where δ_max is the largest Byzantine weight Σ_b W_ib at an honest node and γ the spectral
gap — robustness needs that weight small relative to the gap. Cost O(d P) for d arrivals, the same
as gossip (one norm per neighbour; norms in float64, so a huge finite payload is clipped to τ
rather than its float32 norm overflowing to inf and zeroing it).

The radius τ_i is fixed (``clip_tau > 0``; the authors ran 0.1, 1 and 10) or adaptive. What each
withstands (``tolerance.py`` refuses more):

- fixed τ: no count bound. Each attacker moves the node by at most W_ib τ per round, whatever
  their number — but every round, so persistent attackers can drag it up to δ_i τ per round.
- adaptive radii (``f`` = Byzantine neighbours to budget for, f < d_i): b_i ≤ f. Both take τ_i
  from the inputs *after* setting aside the f farthest (or heaviest) ones, so with at most f
  attackers τ_i is bounded by the honest neighbours' distances, and each attacker's pull with it.
  With more than f attackers an attacker can set the radius to its own distance, and is then
  never clipped (against the authors' second-largest radius, two sign-flip attackers in a 5-node
  clique take the honest nodes to chance).

The two adaptive radii:

- ``"he"``: the radius of He et al.'s analysis, τ_i = sqrt( Σ_{j honest} W_ij ‖x_j − x_i‖² / δ_i ),
  made practical as in Gaucher et al.'s reproduction (``renaudgaucher/Byzantine-Robust-Gossip``,
  ``aggregators/robust_gossip.py::cs_he``): the node cannot know who is honest, so it trusts the
  inputs nearest to itself (its own model included, at distance 0) up to a total weight of
  1 − δ_i, where δ_i is the weight of the f heaviest neighbours that arrived. We include the input
  that brings the total exactly to 1 − δ_i (the formula's honest set); Gaucher et al.'s code
  stops just before it. δ_i = 0 (f = 0) means no clipping. With b_i ≤ f every trusted input is no
  farther than the farthest honest neighbour (distance D), so τ_i ≤ D · sqrt((1 − δ_i) / δ_i).
- ``"second-largest"``: τ_i = the (f+1)-th largest distance among the neighbours that arrived, so
  the f farthest are clipped to it. At f = 1 (the default) that is the second-largest distance,
  the authors' code (``SelfCenteredClipping`` with ``tau=None`` in
  ``epfml/byzantine-robust-decentralized-optimizer``), which budgets for one attacker; f = 0 is
  plain gossip. With b_i ≤ f at least one of the f + 1 farthest is honest, so τ_i ≤ D. Fewer than
  f + 1 arrivals leave no input that is surely honest: τ_i = 0 and the node keeps its own model
  that round (the authors' code left a single neighbour unclipped, attacker or not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gossip.algorithms.robust import Report, no_report
from gossip.ids import NodeId

__all__ = ["ClippedGossip", "clip_rows", "he_radius", "order_radius", "row_norms", "self_centred_clipping"]


def row_norms(rows: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each row, in float64: finite for any finite float32 rows (their float32 norm is not)."""
    norms: torch.Tensor = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float64)
    return norms


def clip_rows(diffs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each row of ``diffs`` to norm at most ``tau``; returns the clipped rows and which were clipped."""
    norms = row_norms(diffs)
    clipped = norms > tau
    scale = torch.where(clipped, tau / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.ones_like(norms))
    out = diffs * scale.to(diffs.dtype)[:, None]
    # a row ~1e38 τ long needs a scale below float32's normal range, where it keeps few bits: scale those in float64
    tiny = (scale > 0) & (scale < torch.finfo(diffs.dtype).tiny)
    if bool(tiny.any()):
        out[tiny] = (diffs[tiny].to(torch.float64) * scale[tiny, None]).to(diffs.dtype)
    return out, clipped


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


def order_radius(distances: torch.Tensor, f: int) -> float:
    """The (f+1)-th largest of the neighbour ``distances``: 0 when fewer than f + 1 arrived, inf when f = 0."""
    if f == 0:
        return math.inf
    if distances.numel() <= f:
        return 0.0
    return float(distances.topk(f + 1).values[f])


@dataclass(frozen=True)
class ClippedGossip:
    """Self-centred clipping with a fixed (``tau > 0``) or adaptive (``tau == 0``) radius; see the module."""

    tau: float = 0.0
    rule: str = "he"  # adaptive radius: "he" | "second-largest"
    f: int = 1  # Byzantine neighbours the adaptive radius budgets for
    report: Report = no_report

    def radius(self, distances: torch.Tensor, weights: torch.Tensor, self_weight: float) -> float:
        """The clipping radius for this round's neighbour distances and weights."""
        if self.tau > 0:
            return self.tau
        if self.rule == "second-largest":
            return order_radius(distances, self.f)
        delta = float(weights.topk(min(self.f, weights.numel())).values.sum()) if weights.numel() else 0.0
        return he_radius(distances, weights, self_weight, delta)

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        if not received:
            return local.clone()
        ids = sorted(received)
        neighbours = torch.stack([received[j] for j in ids])
        w = torch.tensor([weights[j] for j in ids], dtype=torch.float64)
        distances = row_norms(neighbours - local)
        tau = self.radius(distances, w, 1.0 - float(w.sum()))
        out, clipped = self_centred_clipping(local, neighbours, w, tau)
        self.report(clipped, "clipped")
        return out
