"""The aggregator contract and the factory that builds one from the run configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch

from gossip.config import AggregationConfig, VarianceConfig
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.learn.flat import Layout

__all__ = ["Aggregator", "build_aggregator"]


class Aggregator(Protocol):
    """Combine the local vector with the received ones; returns a new vector (inputs are not modified)."""

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor: ...


def build_aggregator(
    cfg: AggregationConfig,
    layout: Layout,
    variance: VarianceConfig | None = None,
    *,
    progress: Callable[[], float] | None = None,
    report: Callable[[int, str], None] | None = None,
) -> Aggregator:
    """The aggregator named by ``cfg.rule``, with its parameters.

    ``progress()`` returns how far the run is, t / T in [0, 1] (rules with a schedule, e.g. BALANCE);
    ``report(count, action)`` receives how many neighbour models a robust rule discarded or clipped
    in a round (the node passes ``NodeMetrics.discarded``).
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

        return VarianceCorrected(layout, variance or VarianceConfig())
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
