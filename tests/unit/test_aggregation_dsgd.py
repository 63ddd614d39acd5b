"""D-SGD mixing: the exact weighted mean, renormalisation onto self, order independence."""

from __future__ import annotations

import numpy as np
import torch

from gossip.algorithms import DSGD, weighted_average
from gossip.algorithms.dsgd import BLOCK, mix_in_place
from gossip.ids import NodeId


def test_equals_weighted_mean() -> None:
    """x_i ← Σ_j W_ij x_j with W_ii = 1 − Σ_{j≠i} W_ij."""
    local = torch.tensor([1.0, 2.0])
    received = {NodeId(1): torch.tensor([3.0, 4.0]), NodeId(2): torch.tensor([5.0, 8.0])}
    out = DSGD().aggregate(local, received, {NodeId(1): 0.25, NodeId(2): 0.25})
    assert torch.allclose(out, 0.5 * local + 0.25 * received[1] + 0.25 * received[2])


def test_missing_neighbour_weight_goes_to_self() -> None:
    """Only arrived neighbours are mixed; the self weight absorbs the rest, so rows stay stochastic."""
    local = torch.tensor([0.0])
    out = weighted_average(local, {NodeId(1): torch.tensor([3.0])}, {NodeId(1): 1 / 3})
    assert torch.allclose(out, torch.tensor([1.0]))


def test_inputs_are_not_modified() -> None:
    """Aggregation returns a new vector; the local vector and received views are untouched."""
    local = torch.ones(3)
    r = torch.full((3,), 2.0)
    DSGD().aggregate(local, {NodeId(1): r}, {NodeId(1): 0.5})
    assert torch.equal(local, torch.ones(3)) and torch.equal(r, torch.full((3,), 2.0))


def test_result_independent_of_dict_order() -> None:
    """Arrival order (dict order) does not change a single bit of the result."""
    g = torch.Generator().manual_seed(0)
    local = torch.randn(1000, generator=g)
    items = [(NodeId(j), torch.randn(1000, generator=g)) for j in range(1, 6)]
    w = {j: 0.1 + 0.01 * j for j, _ in items}
    a = weighted_average(local, dict(items), w)
    b = weighted_average(local, dict(reversed(items)), w)
    assert torch.equal(a, b)


def test_ring_mixing_converges_to_the_exact_mean() -> None:
    """Repeated mixing on a ring with weights 1/3 reaches the average of the initial values."""
    n = 8
    xs = [torch.tensor([float(i)]) for i in range(n)]
    for _ in range(400):
        xs = [
            weighted_average(
                xs[i],
                {NodeId((i - 1) % n): xs[(i - 1) % n], NodeId((i + 1) % n): xs[(i + 1) % n]},
                {NodeId((i - 1) % n): 1 / 3, NodeId((i + 1) % n): 1 / 3},
            )
            for i in range(n)
        ]
    assert np.allclose([float(x) for x in xs], (n - 1) / 2, atol=1e-6)


def test_mix_in_place_gives_the_weighted_average() -> None:
    """One lerp per neighbour, with rescaled coefficients, is the D-SGD step (here with uneven weights and a missing neighbour's weight on self)."""
    g = torch.Generator().manual_seed(1)
    local = torch.randn(5000, generator=g)
    received = {NodeId(j): torch.randn(5000, generator=g) for j in (4, 1, 7)}
    weights = {NodeId(1): 0.2, NodeId(4): 0.15, NodeId(7): 0.3}
    expected = weighted_average(local, received, weights)
    assert mix_in_place(local, received, weights) is not None
    assert torch.allclose(local, expected, rtol=0, atol=1e-6)


def test_mix_in_place_refuses_weights_without_a_self_share_and_leaves_the_vector() -> None:
    """Weights that leave no positive partial self weight (here a first neighbour of weight 0 and no self weight) are refused untouched."""
    local = torch.ones(4)
    received = {NodeId(1): torch.zeros(4), NodeId(2): torch.full((4,), 3.0)}
    assert mix_in_place(local, received, {NodeId(1): 0.0, NodeId(2): 1.0}) is None
    assert torch.equal(local, torch.ones(4))


def test_mix_in_place_keeps_the_network_mean_over_many_rounds() -> None:
    """8-node ring, weights 1/3, 1000 rounds on values near 1: the network's mean moves by less than one float32 ulp
    (1.2e-7) on average and a few at most (measured: 1e-8; the direct form Σ W_ij x_j gives 1e-7 here)."""
    n, d = 8, 5000
    g = torch.Generator().manual_seed(2)
    xs = [1.0 + 0.1 * torch.randn(d, generator=g) for _ in range(n)]
    start = torch.stack(xs).double().mean(0)
    for _ in range(1000):
        new = []
        for i in range(n):
            x = xs[i].clone()
            assert (
                mix_in_place(
                    x,
                    {NodeId((i - 1) % n): xs[(i - 1) % n], NodeId((i + 1) % n): xs[(i + 1) % n]},
                    {NodeId((i - 1) % n): 1 / 3, NodeId((i + 1) % n): 1 / 3},
                )
                is not None
            )
            new.append(x)
        xs = new
    drift = torch.stack(xs).double().mean(0) - start
    assert abs(float(drift.mean())) < 1.2e-7 and float(drift.abs().max()) < 1e-6, (float(drift.mean()), float(drift.abs().max()))


def test_the_blocked_in_place_mix_is_bit_for_bit_the_whole_vector_lerps() -> None:
    """A vector of several blocks and a ragged end: block by block, the mix is exactly one lerp per neighbour over the
    whole vector (sorted senders, rescaled coefficients)."""
    n = 2 * BLOCK + BLOCK // 2 + 13
    g = torch.Generator().manual_seed(3)
    local = torch.randn(n, generator=g)
    received = {NodeId(j): torch.randn(n, generator=g) for j in (5, 2)}
    expected = local.clone().lerp_(received[NodeId(2)], (1 / 3) / (1 - 1 / 3)).lerp_(received[NodeId(5)], 1 / 3)
    assert mix_in_place(local, received, {NodeId(2): 1 / 3, NodeId(5): 1 / 3}) is not None
    assert torch.equal(local, expected)


def test_the_in_place_mix_returns_the_norm_of_its_step() -> None:
    """The distance is ‖old − new‖ of the stored vectors, block norms summed in float64: within 1e-5 of the exact norm
    (measured ~2e-6 here; one float32 norm of the whole vector is off by ~1e-5 at a million parameters)."""
    n = 2 * BLOCK + 7
    g = torch.Generator().manual_seed(4)
    local = torch.randn(n, generator=g)
    received = {NodeId(1): torch.randn(n, generator=g), NodeId(2): torch.randn(n, generator=g)}
    old = local.clone()
    distance = mix_in_place(local, received, {NodeId(1): 1 / 3, NodeId(2): 1 / 3})
    exact = float((old - local).double().norm())
    assert distance is not None and abs(distance - exact) <= 1e-5 * exact
