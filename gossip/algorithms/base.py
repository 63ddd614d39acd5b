"""The aggregator contract, its in-place capability, and the factory that builds one from the run configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import torch

from gossip import plugins
from gossip.config import AggregationConfig, VarianceConfig
from gossip.ids import NodeId
from gossip.learn.flat import Layout

if TYPE_CHECKING:
    from gossip.algorithms.robust import Report
    from gossip.algorithms.variance import LayerVariance

__all__ = ["SHIPPED_RULES", "Aggregator", "InPlaceAggregator", "build_aggregator", "build_plugin_aggregator"]


class Aggregator(Protocol):
    """Combine the local vector with the received ones; returns a new vector (inputs are not modified).

    The contract of every rule, shipped or plug-in. A plug-in (``[aggregation] rule = "module:Class"``) is a
    callable that takes ``[aggregation] options`` as keyword arguments and returns an object with this
    ``aggregate``: ``local`` is the node's flat float32 parameter vector, ``received`` the vectors that
    arrived this round by sender (some neighbours may be missing: late or down), ``weights`` the node's
    mixing weights (its own under its own id), computed from the topology, never from a message. Return a
    new float32 vector of ``local``'s shape and modify no input. Optionally it declares how many Byzantine
    inputs it withstands, ``tolerated(inputs: int) -> int`` (a method or static method of what
    ``rule`` names): without it, a run with an attacker next to an honest node is refused
    (:mod:`gossip.algorithms.tolerance`).
    """

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
    tell = report or _no_report()
    make = _SHIPPED.get(cfg.rule)
    if make is not None:
        return make(_Context(cfg, layout, variance or VarianceConfig(), progress or (lambda: 0.0), tell, layers))
    return build_plugin_aggregator(cfg)


def build_plugin_aggregator(cfg: AggregationConfig) -> Aggregator:
    """The plug-in rule ``cfg.rule`` names, built with ``[aggregation] options``: the launcher's check and the node's build."""
    rule = plugins.build(plugins.AGGREGATOR, cfg.rule, plugins.parse_options(plugins.AGGREGATOR.options_where, cfg.options))
    return cast(Aggregator, rule)


def _no_report() -> Report:
    from gossip.algorithms.robust import no_report

    return no_report


@dataclass(frozen=True)
class _Context:
    """What a shipped rule may be built from: its section, the model's layout, and the node's callbacks."""

    cfg: AggregationConfig
    layout: Layout
    variance: VarianceConfig
    progress: Callable[[], float]
    report: Report
    layers: Callable[[LayerVariance], None] | None


def _dsgd(c: _Context) -> Aggregator:
    from gossip.algorithms.dsgd import DSGD

    return DSGD()


def _variance(c: _Context) -> Aggregator:
    from gossip.algorithms.variance import VarianceCorrected

    return VarianceCorrected(c.layout, c.variance, c.layers)


def _median(c: _Context) -> Aggregator:
    from gossip.algorithms.robust import CoordinateMedian

    return CoordinateMedian(c.report)


def _trimmed_mean(c: _Context) -> Aggregator:
    from gossip.algorithms.robust import TrimmedMean

    return TrimmedMean(c.cfg.f, c.cfg.trim_beta, c.report)


def _krum(c: _Context) -> Aggregator:
    from gossip.algorithms.robust import Krum

    return Krum(c.cfg.f, 1, c.report)


def _multi_krum(c: _Context) -> Aggregator:
    from gossip.algorithms.robust import Krum

    return Krum(c.cfg.f, c.cfg.krum_m, c.report)


def _clipped_gossip(c: _Context) -> Aggregator:
    from gossip.algorithms.clipped_gossip import ClippedGossip

    return ClippedGossip(c.cfg.clip_tau, c.cfg.clip_rule, c.cfg.f, c.report)


def _balance(c: _Context) -> Aggregator:
    from gossip.algorithms.balance import Balance

    return Balance(c.cfg.balance_gamma, c.cfg.balance_kappa, c.cfg.balance_alpha, c.progress, c.report)


_SHIPPED: dict[str, Callable[[_Context], Aggregator]] = {
    "dsgd": _dsgd,
    "variance": _variance,
    "median": _median,
    "trimmed-mean": _trimmed_mean,
    "krum": _krum,
    "multi-krum": _multi_krum,
    "clipped-gossip": _clipped_gossip,
    "balance": _balance,
}
"""The shipped rules by name (the ``[aggregation] rule`` choices): what the factory reads before it turns to plug-ins."""

SHIPPED_RULES = tuple(_SHIPPED)
