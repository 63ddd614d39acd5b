"""The aggregator contract, its in-place capability, and the factory that builds one from the run configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from gossip.config import AggregationConfig, VarianceConfig
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.learn.flat import Layout

if TYPE_CHECKING:
    from gossip.algorithms.robust import Report
    from gossip.algorithms.variance import LayerVariance

__all__ = ["Aggregator", "InPlaceAggregator", "build_aggregator"]


class Aggregator(Protocol):
    """Combine the local vector with the received ones; returns a new vector (inputs are not modified)."""

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor: ...


@runtime_checkable
class InPlaceAggregator(Aggregator, Protocol):
    """A rule that can also mix straight into the node's vector: the capability a node checks once, at construction.

    Why a capability and not a rule of its own: ``aggregate`` returns a fresh vector, which at a million
    parameters costs page faults every round; a rule whose math allows it (D-SGD: a weighted average)
    writes the result where the vector already is, with one caller-owned scratch buffer.
    """

    def mix_(
        self, vector: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float], scratch: torch.Tensor
    ) -> float:
        """Replace ``vector`` by what ``aggregate`` would return; ``scratch`` (shaped like it) is the caller's to reuse.

        Returns the consensus distance: the norm of the step the vector took.
        """
        ...


def build_aggregator(
    cfg: AggregationConfig,
    layout: Layout,
    variance: VarianceConfig | None = None,
    *,
    progress: Callable[[], float] | None = None,
    report: Report | None = None,
    layers: Callable[[LayerVariance], None] | None = None,
) -> Aggregator:
    """The aggregator named by ``cfg.rule``, with its parameters.

    ``progress()`` returns how far the run is, t / T in [0, 1] (rules with a schedule, e.g. BALANCE);
    ``report(count, action)`` receives how many neighbour models a robust rule discarded or clipped
    in a round (the node passes ``NodeMetrics.discarded``); ``layers(variances)`` receives the per-layer
    variances a rule computes anyway (the variance correction), for the round's record and metrics.
    """
    from gossip.algorithms.balance import Balance
    from gossip.algorithms.clipped_gossip import ClippedGossip
    from gossip.algorithms.dsgd import DSGD
    from gossip.algorithms.robust import CoordinateMedian, Krum, TrimmedMean, no_report

    tell = report or no_report
    if cfg.rule == "dsgd":
        return DSGD()
    if cfg.rule == "variance":
        from gossip.algorithms.variance import VarianceCorrected

        return VarianceCorrected(layout, variance or VarianceConfig(), layers)
    if cfg.rule == "median":
        return CoordinateMedian(tell)
    if cfg.rule == "trimmed-mean":
        return TrimmedMean(cfg.f, cfg.trim_beta, tell)
    if cfg.rule == "krum":
        return Krum(cfg.f, 1, tell)
    if cfg.rule == "multi-krum":
        return Krum(cfg.f, cfg.krum_m, tell)
    if cfg.rule == "clipped-gossip":
        return ClippedGossip(cfg.clip_tau, cfg.clip_rule, cfg.f, tell)
    if cfg.rule == "balance":
        return Balance(cfg.balance_gamma, cfg.balance_kappa, cfg.balance_alpha, progress or (lambda: 0.0), tell)
    raise ConfigError(f"[aggregation] unknown rule {cfg.rule!r}")
