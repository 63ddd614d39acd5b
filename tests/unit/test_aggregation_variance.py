"""Variance-corrected averaging (Tian et al. 2024): the vanishing variance and its correction, REFERENCES §8 rows 7–8."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gossip.algorithms import build_aggregator, weighted_average
from gossip.algorithms.variance import (
    VarianceCorrected,
    layer_segments,
    layer_variance,
    rescale_to_variance,
    segment_mean_var,
    variance_corrected_average,
)
from gossip.config import AggregationConfig, VarianceConfig
from gossip.ids import NodeId
from gossip.learn.flat import FlatModel, flatten_


def lenet_head(seed: int) -> FlatModel:
    """LeNet-5's fully connected head (400 → 120 → 84 → 10), Xavier-uniform weights, zero biases."""
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    for m in module:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return flatten_(module)


def models(count: int) -> list[torch.Tensor]:
    return [lenet_head(seed).vector.clone() for seed in range(count)]


def test_segment_statistics_match_per_layer_torch() -> None:
    """The segment reductions equal torch's per-tensor mean and population variance, layer by layer."""
    flat = lenet_head(0)
    x = torch.randn(flat.layout.numel)
    seg = layer_segments(flat.layout, "all")
    mean, var = segment_mean_var(x, seg)
    specs = [s for s in flat.layout.learnable() if s.numel > 1]
    assert seg.names == tuple(s.name for s in specs)
    for k, s in enumerate(specs):
        part = x[s.offset : s.stop].double()
        assert mean[k].item() == pytest.approx(part.mean().item(), rel=1e-12, abs=1e-12)
        assert var[k].item() == pytest.approx(part.var(unbiased=False).item(), rel=1e-10)
    stacked = torch.stack([x, 2 * x])
    assert torch.allclose(segment_mean_var(stacked, seg)[1][1], 4 * var)


@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_plain_average_of_m_independent_xavier_layers_has_variance_ratio_one_over_m(m: int) -> None:
    """Row 7: the uniform average of m independently initialised models has 1/m of the layer
    variance (0.5, 0.25, 0.125, 0.0625). Tolerance 6 %: the 48 000-element layer's variance estimate
    has a relative sampling error of about 1 %, and these are m fixed seeds."""
    xs = models(m)
    local, received = xs[0], {NodeId(j): xs[j] for j in range(1, m)}
    avg = weighted_average(local, received, {j: 1.0 / m for j in received})
    seg = layer_segments(lenet_head(0).layout)
    ratio = layer_variance(avg, seg) / torch.stack([layer_variance(x, seg) for x in xs]).mean(0)
    assert ratio[0].item() == pytest.approx(1 / m, rel=0.06)  # the 400×120 layer
    assert ratio.mean().item() == pytest.approx(1 / m, rel=0.15)  # smaller layers are noisier


def test_conservative_average_beta_half_seven_received_keeps_0286() -> None:
    """Row 7: beta = 0.5 own weight and m = 7 received: beta² + (1−beta)²/m = 0.2857 of the variance."""
    xs = models(8)
    agg = VarianceCorrected(lenet_head(0).layout, VarianceConfig(beta=0.5))
    received = {NodeId(j): xs[j] for j in range(1, 8)}
    avg = weighted_average(xs[0], received, agg.weights_for(received, {}))
    seg = agg.segments
    ratio = layer_variance(avg, seg)[0] / layer_variance(xs[0], seg)[0]
    assert ratio.item() == pytest.approx(0.25 + 0.25 / 7, rel=0.06)


@pytest.mark.parametrize("target", ["others", "self", "conservative"])
def test_after_correction_each_layer_has_the_target_variance(target: str) -> None:
    """Row 8: after the rescale every corrected layer's variance equals its target (float32 precision),
    its mean is unchanged, and tensors outside the selection (biases) are bit-identical to the average."""
    xs = models(8)
    layout = lenet_head(0).layout
    agg = VarianceCorrected(layout, VarianceConfig(beta=0.5, target=target))
    received = {NodeId(j): xs[j] for j in range(1, 8)}
    out = agg.aggregate(xs[0], received, {})
    stats = agg.last
    assert stats is not None and stats.target is not None
    seg = agg.segments
    recv_var = torch.stack([layer_variance(x, seg) for x in xs[1:]])
    own_var = layer_variance(xs[0], seg)
    expected = {"others": recv_var.mean(0), "self": own_var, "conservative": 0.5 * own_var + 0.5 * recv_var.mean(0)}[target]
    assert torch.allclose(stats.target, expected, rtol=1e-12)
    assert torch.allclose(layer_variance(out, seg), expected, rtol=1e-5)
    assert torch.allclose(stats.after, expected, rtol=1e-5)
    assert (stats.before < 0.5 * expected).all()  # the average had lost variance
    averaged = weighted_average(xs[0], received, agg.weights_for(received, {}))
    assert torch.allclose(segment_mean_var(out, seg)[0], segment_mean_var(averaged, seg)[0], atol=1e-7)
    for spec in layout.of_kind("bias"):
        assert torch.equal(out[spec.offset : spec.stop], averaged[spec.offset : spec.stop])


def test_layers_all_rescales_biases_too_and_never_running_stats() -> None:
    """``layers = "all"`` also corrects biases (non-constant ones); BatchNorm running statistics never move."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Linear(30, 5))
    flat = flatten_(module)
    layout = flat.layout
    xs = [torch.randn(layout.numel) for _ in range(5)]
    received = {NodeId(j): xs[j] for j in range(1, 5)}
    weights_only = VarianceCorrected(layout, VarianceConfig(layers="weights")).aggregate(xs[0], received, {})
    everything = VarianceCorrected(layout, VarianceConfig(layers="all")).aggregate(xs[0], received, {})
    bias = layout.of_kind("bias")[0]
    assert not torch.equal(weights_only[bias.offset : bias.stop], everything[bias.offset : bias.stop])
    averaged = weighted_average(xs[0], received, {j: 0.5 / 4 for j in received})
    for spec in layout.of_kind("norm_stat"):
        assert torch.equal(everything[spec.offset : spec.stop], averaged[spec.offset : spec.stop])
    seg = layer_segments(layout, "all")
    assert bias.name in seg.names and not any("running" in n for n in seg.names)


def test_mixing_mode_is_dsgd_followed_by_the_rescale() -> None:
    """``self_weight = "mixing"``: the average is exactly D-SGD's with the given weights, then rescaled."""
    xs = models(4)
    layout = lenet_head(0).layout
    received = {NodeId(j): xs[j] for j in range(1, 4)}
    weights = {NodeId(1): 0.2, NodeId(2): 0.3, NodeId(3): 0.1}
    agg = VarianceCorrected(layout, VarianceConfig(self_weight="mixing"))
    out = agg.aggregate(xs[0], received, weights)
    dsgd = weighted_average(xs[0], received, weights)
    goal = (torch.tensor([0.2, 0.3, 0.1], dtype=torch.float64) / 0.6) @ torch.stack([layer_variance(x, agg.segments) for x in xs[1:]])
    assert torch.equal(out, rescale_to_variance(dsgd, goal, agg.segments))


def test_correction_fades_when_models_agree() -> None:
    """Identical models: the average already has the target variance, so the rescale is the identity
    up to float rounding (the correction switches itself off at consensus)."""
    x = models(1)[0]
    agg = VarianceCorrected(lenet_head(0).layout, VarianceConfig())
    out = agg.aggregate(x, {NodeId(1): x.clone(), NodeId(2): x.clone()}, {})
    assert torch.allclose(out, x, atol=1e-6)


def test_nothing_received_returns_the_local_model() -> None:
    """No arrival, no average, nothing to correct."""
    x = models(1)[0]
    agg = VarianceCorrected(lenet_head(0).layout, VarianceConfig())
    assert torch.equal(agg.aggregate(x, {}, {}), x)
    assert agg.last is not None and agg.last.target is None


def test_eps_biases_the_factor_for_small_variance_layers() -> None:
    """Why eps defaults to 0: with DFL_torch's eps = 1e-4 a layer of variance ~1e-3 is not brought back
    to its target; with eps = 0 it is."""
    seg_x = models(8)
    layout = lenet_head(0).layout
    received = {NodeId(j): seg_x[j] for j in range(1, 8)}
    exact = VarianceCorrected(layout, VarianceConfig(eps=0.0))
    biased = VarianceCorrected(layout, VarianceConfig(eps=1e-4))
    exact.aggregate(seg_x[0], received, {})
    biased.aggregate(seg_x[0], received, {})
    assert exact.last is not None and biased.last is not None and exact.last.target is not None
    assert torch.allclose(exact.last.after, exact.last.target, rtol=1e-5)
    assert (biased.last.after < 0.97 * exact.last.target).any()


def test_built_from_config() -> None:
    """``[aggregation] rule = "variance"`` builds the corrected rule with the ``[variance]`` settings."""
    agg = build_aggregator(AggregationConfig(rule="variance"), lenet_head(0).layout, VarianceConfig(beta=0.25))
    assert isinstance(agg, VarianceCorrected) and agg.cfg.beta == 0.25


def test_vectorised_rescale_matches_a_per_layer_reference() -> None:
    """The segment implementation equals the straightforward per-layer loop of REFERENCES §2.2."""
    xs = models(5)
    layout = lenet_head(0).layout
    received = {NodeId(j): xs[j] for j in range(1, 5)}
    out, _ = variance_corrected_average(xs[0], received, {j: 0.125 for j in received}, layer_segments(layout))
    ref = weighted_average(xs[0], received, {j: 0.125 for j in received}).clone()
    for spec in layout.of_kind("weight"):
        a = ref[spec.offset : spec.stop].double()
        goal = torch.stack([received[j][spec.offset : spec.stop].double().var(unbiased=False) for j in sorted(received)]).mean()
        mu, cur = a.mean(), a.var(unbiased=False)
        ref[spec.offset : spec.stop] = (mu + (a - mu) * torch.sqrt(goal / cur)).float()
    assert torch.allclose(out, ref, atol=1e-6)
