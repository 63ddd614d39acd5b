"""Distance filters: accept a neighbour's model only when it is close to the node's own (BALANCE).

BALANCE — Fang, Zhang, Chen, Li, Gong et al., "Byzantine-robust decentralized federated learning",
ACM CCS 2024 (arXiv 2406.10416). Node i accepts neighbour j iff

    ‖x_i − x_j‖ ≤ γ · exp(−κ · λ(t)) · ‖x_i‖,     λ(t) = t / T

then x_i ← α x_i + (1 − α) · mean(accepted), and keeps x_i unchanged when nothing is accepted.
The threshold is relative to the node's own model and tightens as training converges
(λ goes 0 → 1 over the run). Mixing weights are not used: accepted neighbours count equally.
Defaults γ = 0.7, κ = 1, α = 0.5 are those hard-coded in a third-party implementation (the NEBULA
platform, ``nebula/core/aggregation/balance.py``); the paper's own defaults could not be read.

Breakdown: no count bound — the filter is relative to the node itself, so any number of far-away
attackers is rejected, and whatever their number one round moves the node by at most
(1 − α) · γ e^{−κλ} ‖x_i‖. Attackers that stay inside the acceptance ball (ALIE-like payloads near
the honest mean) are averaged in with weight (1 − α)/|accepted| each, and a node whose accepted
set is all Byzantine follows them within that bound every round. Cost O(d P) for d arrivals (one
norm per neighbour, in float64). Fewer arrivals just mean a smaller accepted set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from gossip.algorithms.clipped_gossip import row_norms
from gossip.algorithms.robust import Report, mean_rows, no_report
from gossip.ids import NodeId

__all__ = ["Balance", "balance", "balance_threshold"]


def balance_threshold(local: torch.Tensor, gamma: float, kappa: float, progress: float) -> float:
    """γ · exp(−κ · λ) · ‖x_i‖ with λ = ``progress`` in [0, 1]."""
    return gamma * math.exp(-kappa * progress) * float(torch.linalg.vector_norm(local, dtype=torch.float64))


def balance(local: torch.Tensor, neighbours: torch.Tensor, threshold: float, alpha: float) -> tuple[torch.Tensor, int]:
    """Average the own model with the mean of the neighbours within ``threshold``; returns it and the rejected count."""
    if neighbours.shape[0] == 0:
        return local.clone(), 0
    accepted = row_norms(neighbours - local) <= threshold
    rejected = int((~accepted).sum())
    if not bool(accepted.any()):
        return local.clone(), rejected
    return alpha * local + (1.0 - alpha) * mean_rows(neighbours[accepted]), rejected


@dataclass(frozen=True)
class Balance:
    """BALANCE's distance filter (see the module); ``progress()`` returns λ(t) = t / T of the run."""

    gamma: float = 0.7
    kappa: float = 1.0
    alpha: float = 0.5
    progress: Callable[[], float] = lambda: 0.0
    report: Report = no_report

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        if not received:
            return local.clone()
        neighbours = torch.stack([received[j] for j in sorted(received)])
        threshold = balance_threshold(local, self.gamma, self.kappa, min(1.0, max(0.0, self.progress())))
        out, rejected = balance(local, neighbours, threshold, self.alpha)
        self.report(rejected, "discarded")
        return out
