"""D-SGD mixing: the exact weighted mean, renormalisation onto self, order independence."""

from __future__ import annotations

import numpy as np
import torch

from gossip.aggregation import DSGD, weighted_average
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
            weighted_average(xs[i], {NodeId((i - 1) % n): xs[(i - 1) % n], NodeId((i + 1) % n): xs[(i + 1) % n]}, {NodeId((i - 1) % n): 1 / 3, NodeId((i + 1) % n): 1 / 3})
            for i in range(n)
        ]
    assert np.allclose([float(x) for x in xs], (n - 1) / 2, atol=1e-6)
