"""Mixing: a node's vector combined with the models it received, through the configured aggregation rule.

The common case (D-SGD) mixes in place, with one scratch buffer of the node's, when the rule has that
capability (:class:`~gossip.algorithms.InPlaceAggregator`, checked once here); any other rule returns a
fresh vector that is copied in. Either way the mixer returns the consensus distance, and keeps the round's
per-layer weight variances for its record: the variance rule reports them through a callback, otherwise they
are measured when the record asks (:meth:`Mixer.layer_record`).

D-SGD's distance is the norm of ``before − after`` over the whole vector, so a finite one proves the mixed
vector finite (an infinity or a NaN anywhere in either makes that difference, and its norm, non-finite):
:attr:`Mixer.finite` says so, and the round skips its own pass over the vector (gossip.node.sync).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from gossip.algorithms import DSGD, InPlaceAggregator, build_aggregator, layer_segments, layer_variance, weighted_average
from gossip.algorithms.variance import LayerVariance
from gossip.config import RunConfig
from gossip.ids import NodeId
from gossip.learn.device import ReceiveBuffers
from gossip.learn.flat import FlatModel
from gossip.ops.metrics import NodeMetrics

__all__ = ["Mixer"]


class Mixer:
    """The aggregation of one node (see the module)."""

    def __init__(self, cfg: RunConfig, flat: FlatModel, metrics: NodeMetrics, progress: Callable[[], float]) -> None:
        self.flat = flat
        self.metrics = metrics
        self.aggregator = build_aggregator(
            cfg.aggregation, flat.layout, cfg.variance, progress=progress, report=metrics.discarded, layers=self._saw_layers
        )
        self._in_place = self.aggregator if isinstance(self.aggregator, InPlaceAggregator) else None
        # only D-SGD's distance is known to be ‖before − after‖ (a plug-in's mix_ may return anything)
        self._distance_proves_finite = isinstance(self.aggregator, DSGD)
        self.finite = False  # the last mix() proved the vector finite (see the module); a caller may reset it
        self.layers = layer_segments(flat.layout, cfg.variance.layers)
        self._layer_var: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._mix_step: torch.Tensor | None = None  # the in-place D-SGD mix's step (old − new), for the consensus distance
        self.uploads = ReceiveBuffers(flat.vector.device)  # on a GPU: what arrived, copied to it into reused buffers

    def mix(self, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> float:
        """Aggregate into the node's vector; returns the consensus distance to the neighbourhood average (before mixing)."""
        vector = self.flat.vector
        received = self.uploads.to_device(received)  # validated on the host already (gossip.net.wire); on the CPU: as is
        if self._in_place is not None:  # the common case (D-SGD), in place: no fresh buffers
            if self._mix_step is None:
                self._mix_step = torch.empty_like(vector)
            distance = self._in_place.mix_(vector, received, weights, self._mix_step)
            self.finite = self._distance_proves_finite and math.isfinite(distance)
            return distance
        self.finite = False
        neighbourhood = weighted_average(vector, received, weights)
        distance = float(torch.linalg.vector_norm(vector - neighbourhood))
        vector.copy_(self.aggregator.aggregate(vector, received, weights))
        return distance

    def _saw_layers(self, variances: LayerVariance) -> None:
        """The rule's per-layer variances of this mix (the variance correction), for the round's record."""
        self._layer_var = (variances.before, variances.after, variances.target)

    @property
    def saw_layers(self) -> bool:
        """Whether the rule reported this round's layer variances (the variance correction records every round)."""
        return self._layer_var is not None

    def layer_record(self) -> dict[str, list[float]]:
        """Per-layer weight variance of this round, compact (names are in the node's summary), and to metrics.

        ``before``: the averaged model before the variance correction; ``after``: the model that leaves
        the aggregation (equal without the correction); ``target``: the correction's target.
        """
        if self._layer_var is None:
            v = layer_variance(self.flat.vector, self.layers)
            self._layer_var = (v, v, None)
        before, after, target = self._layer_var
        self._layer_var = None
        self.metrics.layer_variance(self.layers.names, before.tolist(), after.tolist())
        out = {"before": _compact(before), "after": _compact(after)}
        if target is not None:
            out["target"] = _compact(target)
        return out


def _compact(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]
