"""Aggregation rules: how a node combines its own model with the models that arrived this round.

Every rule is an :class:`Aggregator` with exactly one method, ``aggregate(local, received, weights)``,
over flat float32 parameter vectors. The math lives in pure tensor functions beside each class (no
I/O, no sockets, no logging of tensors), so it can be tested with adversarial inputs directly.

``weights`` maps each neighbour that *arrived* to its mixing weight W_ij, computed by this node
from the topology (never taken from a message). The node's own weight is what is left,
``1 - sum(weights.values())``: a neighbour that timed out hands its weight back to the node itself,
which keeps every row of the effective mixing matrix stochastic.

Rules: ``dsgd`` (default), ``variance`` (``variance.py``, Tian et al. 2024), and the Byzantine-robust ``median``, ``trimmed-mean``, ``krum``,
``multi-krum`` (``robust.py``), ``clipped-gossip`` (``clipping.py``) and ``balance``
(``filters.py``); ``tolerance.py`` knows how many Byzantine inputs each tolerates and refuses a run
that asks for more, before any process starts.
"""

from __future__ import annotations

from gossip.algorithms.balance import Balance
from gossip.algorithms.base import Aggregator, InPlaceAggregator, build_aggregator
from gossip.algorithms.clipped_gossip import ClippedGossip
from gossip.algorithms.dsgd import DSGD, weighted_average
from gossip.algorithms.robust import CoordinateMedian, Krum, TrimmedMean
from gossip.algorithms.variance import VarianceCorrected, layer_segments, layer_variance

__all__ = [
    "DSGD",
    "Aggregator",
    "Balance",
    "ClippedGossip",
    "CoordinateMedian",
    "InPlaceAggregator",
    "Krum",
    "TrimmedMean",
    "VarianceCorrected",
    "build_aggregator",
    "layer_segments",
    "layer_variance",
    "weighted_average",
]
