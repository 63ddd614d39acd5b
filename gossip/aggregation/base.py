"""The aggregator contract and the factory that builds one from the run configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch

from gossip.config import AggregationConfig, VarianceConfig
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.state import Layout

__all__ = ["Aggregator", "build_aggregator"]


class Aggregator(Protocol):
    """Combine the local vector with the received ones; returns a new vector (inputs are not modified)."""

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor: ...


def build_aggregator(cfg: AggregationConfig, layout: Layout, variance: VarianceConfig | None = None) -> Aggregator:
    """The aggregator named by ``cfg.rule``, with its parameters (``variance``: the ``[variance]`` section)."""
    from gossip.aggregation.dsgd import DSGD
    from gossip.aggregation.variance import VarianceCorrected

    if cfg.rule == "dsgd":
        return DSGD()
    if cfg.rule == "variance":
        return VarianceCorrected(layout, variance or VarianceConfig())
    raise ConfigError(f"[aggregation] unknown rule {cfg.rule!r}")
