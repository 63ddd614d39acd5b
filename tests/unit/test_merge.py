"""The single global merge's math: an order-free exact average, the agreement rule, BatchNorm re-estimation."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from gossip.algorithms import weighted_average
from gossip.algorithms.merge import agreed_members, exact_average, recalibrate_norm_stats, stat_mask_of
from gossip.algorithms.pushsum import absorb_weights, split_mass
from gossip.ids import NodeId
from gossip.learn.flat import flatten_
from gossip.learn.models import build_model


def test_exact_average_is_the_float64_mean_whatever_the_arrival_order() -> None:
    """Every insertion order gives the same bits, equal to numpy's float64 mean rounded once to float32."""
    gen = torch.Generator().manual_seed(0)
    vectors = {NodeId(j): torch.randn(1000, generator=gen) * 10 ** (j % 3) for j in range(5)}
    expected = np.mean(np.stack([vectors[NodeId(j)].double().numpy() for j in range(5)]), axis=0).astype(np.float32)
    results = {exact_average({k: vectors[k] for k in order}).numpy().tobytes() for order in itertools.permutations(vectors)}
    assert len(results) == 1
    assert np.array_equal(exact_average(vectors).numpy(), expected)


def test_agreed_members_is_the_intersection_of_the_views() -> None:
    """A model one node missed is dropped by everyone: the set every node holds."""
    own = frozenset(map(NodeId, {0, 1, 3, 4}))
    views = {
        NodeId(1): frozenset(map(NodeId, {0, 1, 3, 4})),
        NodeId(3): frozenset(map(NodeId, {0, 1, 3})),
        NodeId(4): frozenset(map(NodeId, {0, 1, 3, 4, 5})),
    }
    assert agreed_members(own, views) == {0, 1, 3}
    assert agreed_members(own, {}) == own


def test_averaged_calibrations_equal_one_calibration_over_all_batches() -> None:
    """Why the merge averages re-estimated statistics: with equal batch counts, the mean of the nodes'
    cumulative BatchNorm estimates equals the estimate over the union of their batches (update_bn)."""
    torch.manual_seed(0)
    flat = flatten_(build_model("mlpbn", (40,), 10))
    stats = flat.layout.of_kind("norm_stat")
    mask = stat_mask_of(stats, flat.layout.numel)
    assert int(mask.sum()) == sum(s.numel for s in stats) == 4 * 100
    data = [torch.randn(64, 40) + k for k in range(3)]  # three nodes' local data, shifted
    per_node = {}
    for k, x in enumerate(data):
        assert recalibrate_norm_stats(flat.module, x, batch_size=16, batches=4) == 4
        per_node[NodeId(k)] = flat.vector.clone()
    recalibrate_norm_stats(flat.module, torch.cat(data), batch_size=16, batches=12)
    union = flat.vector.clone()
    averaged = exact_average(per_node)
    assert torch.allclose(averaged[mask], union[mask], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_node[NodeId(0)][mask], union[mask], atol=1e-2)  # one node's estimate alone is off
    assert torch.equal(averaged[~mask], per_node[NodeId(0)][~mask])  # parameters untouched


def test_no_batchnorm_means_no_calibration() -> None:
    """A model without normalisation statistics is left alone."""
    flat = flatten_(build_model("mlp", (40,), 10))
    before = flat.vector.clone()
    assert recalibrate_norm_stats(flat.module, torch.randn(32, 40), 16, 4) == 0
    assert torch.equal(flat.vector, before)


def test_push_sum_keeps_the_average_under_one_way_pushes() -> None:
    """Random one-way pushes with push-sum weights: total mass stays n and the mass-weighted average of
    the models stays the initial average, while plain 1/2 merging drifts away from it."""
    rng = np.random.default_rng(0)
    n = 6
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(50, generator=gen) for _ in range(n)]
    z, mass = [x.clone() for x in start], [1.0] * n
    plain = [x.clone() for x in start]
    for _ in range(300):
        i, j = rng.choice(n, size=2, replace=False)
        mass[i], sent = split_mass(mass[i])
        weights, mass[j] = absorb_weights(mass[j], {NodeId(i): sent})
        z[j] = weighted_average(z[j], {NodeId(i): z[i]}, weights)
        plain[j] = weighted_average(plain[j], {NodeId(i): plain[i]}, {NodeId(i): 0.5})
    target = torch.stack(start).mean(0)
    assert sum(mass) == n
    weighted = sum(m * v for m, v in zip(mass, z, strict=True)) / n
    assert torch.allclose(weighted, target, atol=1e-5)
    assert max(float((v - target).abs().max()) for v in z) < 1e-2  # and every node converged to it
    assert float((torch.stack(plain).mean(0) - target).abs().max()) > 1e-2
