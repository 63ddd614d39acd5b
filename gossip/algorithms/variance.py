"""Variance-corrected model averaging (Tian, Al-Ars, Kitsak, Hofstee 2024, "Vanishing Variance Problem in
Fully Decentralized Neural-Network Systems", arXiv 2404.04616).

Why: averaging m *uncorrelated* models (independent initialisation, or models trained apart) divides
each layer's weight variance by about m, which destroys the Xavier variance the layers started with and
delays learning (the paper's "plateau delay" of gossip learning). The fix rescales every layer of the
average back to a target variance, stretching only the deviation from the layer mean::

    A      = w_0 · x_self + Σ_j w_j · x_j                      (the average; difference form, sorted senders)
    mu, s² = mean(A^l), Var(A^l)                               (over the elements of layer l)
    A^l   <- mu + (A^l − mu) · sqrt((s_t² + eps) / (s² + eps))

Decisions (and why):

- **The average.** ``self_weight = "beta"`` is the paper's conservative average (``ConservativeModelAverager``
  in the authors' DFL_torch): w_0 = beta, w_j = (1 − beta)/m. ``"mixing"`` uses the weights the node was
  given instead — the topology's D-SGD weights in sync rounds, 1/2 for a pull or a push — so the
  correction composes with D-SGD, the communication schedules and async gossip.
- **The target** s_t² per layer. ``others`` (the paper's FollowOthers, the ``VC`` preset): the mean
  element variance of the *received* models, weighted like the average (so a plain mean in beta mode).
  ``self``: the node's own model before averaging (DFL2's FollowSelf, with the target taken *before*
  the average — taking it after, DFL2's default, does nothing). ``conservative``: the same w_0/w_j mix of
  the own and the received variances (DFL2's follow_beta).
- **Which tensors.** ``layers = "weights"``: tensors of dim >= 2 (Linear and Conv weights), as in the
  authors' C++ original, which leaves biases alone; it also keeps BatchNorm's gamma (variance 0 at
  init) and all running statistics untouched. ``"all"``: also biases and normalisation affine
  parameters with more than one element (DFL_torch's behaviour). Running statistics are never rescaled.
- **Population variance, eps = 0 by default.** Target and current variance are computed over the same
  layer, so the unbiased factor n/(n − 1) cancels in their ratio: unbiased vs population changes nothing
  unless eps > 0. We default to eps = 0 (the C++ original), which makes the corrected variance equal the
  target exactly (REFERENCES §8 row 8) whatever the layer's scale; ``eps = 1e-4`` reproduces DFL_torch,
  but it biases the factor for layers whose variance is near 1e-4 (a 100×100 Xavier layer has 0.01, a
  ResNet conv 2e-4). A layer whose current variance is 0 (all elements equal) is left as it is.
- **Vectorised over the flat vector.** Per-layer statistics are float64 reductions over each layer's
  contiguous slice (a loop over the handful of layers, never over elements); they run in float64 so
  the ratio is exact to float32 precision, and the result is float32 like the model. Elements outside
  the selected layers get mean 0 and scale 1, so they pass through bit-exactly.

When the node received nothing there is no average and nothing to correct: the local model is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from gossip.algorithms.dsgd import weighted_average
from gossip.config import VarianceConfig
from gossip.ids import NodeId
from gossip.learn.flat import Layout

__all__ = [
    "LayerVariance",
    "Segments",
    "VarianceCorrected",
    "layer_segments",
    "layer_variance",
    "rescale_to_variance",
    "segment_mean_var",
    "variance_corrected_average",
]


@dataclass(frozen=True)
class Segments:
    """Which layer each element of the flat vector belongs to; ``ids == len(names)`` for elements left out."""

    names: tuple[str, ...]
    ids: torch.Tensor  # (P,) int64
    counts: torch.Tensor  # (S,) float64, elements per selected layer
    ranges: tuple[tuple[int, int], ...] = ()  # (start, stop) of each selected layer in the vector

    @property
    def size(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class LayerVariance:
    """Per-layer element variance, in ``Segments.names`` order: the average before the rescale, the
    target, and the model that leaves the aggregation (``target`` is ``None`` when nothing was rescaled)."""

    before: torch.Tensor
    after: torch.Tensor
    target: torch.Tensor | None = None


def layer_segments(layout: Layout, layers: str = "weights") -> Segments:
    """Segments over the weight tensors (dim >= 2) or, with ``"all"``, every learnable tensor of > 1 element."""
    if layers == "weights":
        specs = layout.of_kind("weight")
    elif layers == "all":
        specs = tuple(s for s in layout.learnable() if s.numel > 1)
    else:
        raise ValueError(f"layers must be 'weights' or 'all', got {layers!r}")
    ids = torch.full((layout.numel,), len(specs), dtype=torch.int64)
    for k, spec in enumerate(specs):  # once, at construction: a handful of slices
        ids[spec.offset : spec.stop] = k
    counts = torch.tensor([float(s.numel) for s in specs], dtype=torch.float64)
    return Segments(tuple(s.name for s in specs), ids, counts, tuple((s.offset, s.stop) for s in specs))


def segment_mean_var(x: torch.Tensor, seg: Segments) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer mean and population variance of ``x`` (shape ``(P,)`` or ``(m, P)``), in float64.

    The stable two-pass formula (mean, then the mean squared deviation as one dot product), run per
    layer: layers are contiguous slices of the vector and there are a handful of them. Not two
    ``index_add_`` scatters over the whole vector: those run serially, many times slower, and a node
    computes this every round for its metrics.
    """
    lead = x.shape[:-1]
    if not seg.ranges:
        empty = torch.zeros((*lead, 0), dtype=torch.float64)
        return empty, empty.clone()
    means, variances = [], []
    for a, b in seg.ranges:
        dev = x[..., a:b].to(torch.float64)
        mean = dev.mean(dim=-1, keepdim=True)
        dev.sub_(mean)
        means.append(mean.squeeze(-1))
        variances.append(torch.linalg.vecdot(dev, dev, dim=-1) / (b - a))
    return torch.stack(means, dim=-1), torch.stack(variances, dim=-1)


def layer_variance(x: torch.Tensor, seg: Segments) -> torch.Tensor:
    """Per-layer element variance of one flat vector (float64, ``(S,)``)."""
    return segment_mean_var(x, seg)[1]


def rescale_to_variance(x: torch.Tensor, target: torch.Tensor, seg: Segments, eps: float = 0.0) -> torch.Tensor:
    """``x`` with each selected layer's deviation from its mean scaled so its variance becomes ``target``.

    Elements outside the segments are returned bit-exactly (mean 0, scale 1). A layer whose variance
    (plus eps) is 0 keeps scale 1: there is no deviation to stretch.
    """
    mean, var = segment_mean_var(x, seg)
    num = target.to(torch.float64) + eps
    den = var + eps
    scale = torch.where(den > 0, torch.sqrt(num / torch.where(den > 0, den, 1.0)), torch.ones_like(den))
    one, zero = scale.new_ones(1), mean.new_zeros(1)
    scale_full = torch.cat([scale, one]).index_select(0, seg.ids)
    mean_full = torch.cat([mean, zero]).index_select(0, seg.ids)
    x64 = x.to(torch.float64)
    return (mean_full + (x64 - mean_full) * scale_full).to(x.dtype)


def variance_corrected_average(
    local: torch.Tensor,
    received: Mapping[NodeId, torch.Tensor],
    weights: Mapping[NodeId, float],
    seg: Segments,
    *,
    target: str = "others",
    eps: float = 0.0,
) -> tuple[torch.Tensor, LayerVariance]:
    """The weighted average of ``local`` and ``received``, each selected layer rescaled to the target variance.

    ``weights`` are the neighbours' weights w_j (the own weight is ``1 − Σ w_j``). Returns the new
    vector and the per-layer variances before and after the rescale, and the target.
    """
    if not received:
        v = layer_variance(local, seg)
        return local.clone(), LayerVariance(v, v, None)
    order = sorted(received)
    averaged = weighted_average(local, received, weights)
    stack = torch.stack([received[j] for j in order])
    w = torch.tensor([weights[j] for j in order], dtype=torch.float64)
    recv_var = segment_mean_var(stack, seg)[1]  # (m, S)
    if target == "others":
        goal = (w / w.sum()) @ recv_var if float(w.sum()) > 0 else recv_var.mean(0)
    elif target == "self":
        goal = layer_variance(local, seg)
    elif target == "conservative":
        goal = (1.0 - float(w.sum())) * layer_variance(local, seg) + w @ recv_var
    else:
        raise ValueError(f"target must be 'others', 'self' or 'conservative', got {target!r}")
    before = layer_variance(averaged, seg)
    corrected = rescale_to_variance(averaged, goal, seg, eps)
    return corrected, LayerVariance(before, layer_variance(corrected, seg), goal)


class VarianceCorrected:
    """Conservative (or D-SGD-weighted) averaging followed by the per-layer variance rescale.

    ``last`` holds the per-layer variances of the latest call, and ``report`` (when given) receives them
    after every call: the node puts them in the round's record and metrics.
    """

    def __init__(self, layout: Layout, cfg: VarianceConfig, report: Callable[[LayerVariance], None] | None = None) -> None:
        self.cfg = cfg
        self.segments = layer_segments(layout, cfg.layers)
        self.last: LayerVariance | None = None
        self._report = report

    def weights_for(self, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> dict[NodeId, float]:
        """The weights actually used: beta's (1 − beta)/m each, or the given mixing weights."""
        if self.cfg.self_weight == "beta":
            share = (1.0 - self.cfg.beta) / len(received) if received else 0.0
            return {j: share for j in received}
        return {j: weights[j] for j in received}

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        out, self.last = variance_corrected_average(
            local, received, self.weights_for(received, weights), self.segments, target=self.cfg.target, eps=self.cfg.eps
        )
        if self._report is not None:
            self._report(self.last)
        return out
