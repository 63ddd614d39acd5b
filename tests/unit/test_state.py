"""The flat parameter vector: views, fingerprints and hashes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from gossip.learn.flat import flatten_, model_hash


def _net(hidden: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 3))


def test_parameters_become_views_of_one_vector() -> None:
    """Writing the flat vector changes the module's parameters (and BN statistics) in place."""
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    flat = flatten_(net)
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, b)
    flat.vector.add_(1.0)
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.allclose(p, b + 1.0)
    assert torch.allclose(net[1].running_var, torch.full((8,), 2.0))


def test_optimiser_steps_update_the_vector() -> None:
    """An optimiser created after flattening trains the vector itself."""
    net = _net()
    flat = flatten_(net)
    start = flat.vector.clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    assert not torch.equal(flat.vector, start)


def test_wire_bytes_are_the_live_vector() -> None:
    """``wire_bytes`` is a byte view of the vector itself: a training step shows in it without a new view."""
    flat = flatten_(_net())
    view = flat.wire_bytes
    assert view.format == "B" and len(view) == 4 * flat.vector.numel() and flat.wire_bytes is view
    flat.vector.add_(1.0)
    assert torch.equal(torch.frombuffer(bytearray(view), dtype=torch.float32), flat.vector)
    with pytest.raises(dataclasses.FrozenInstanceError):
        flat.vector = torch.zeros_like(flat.vector)  # type: ignore[misc]  # a new vector would leave the view stale


def test_layout_kinds_and_integer_buffers() -> None:
    """Weights (dim ≥ 2), biases, norm parameters and norm statistics are told apart; counters stay out."""
    flat = flatten_(_net())
    kinds = {s.name: s.kind for s in flat.layout.specs}
    assert kinds["0.weight"] == "weight"
    assert kinds["0.bias"] == "bias"
    assert kinds["1.weight"] == "norm"
    assert kinds["1.running_mean"] == "norm_stat"
    assert "1.num_batches_tracked" not in kinds
    assert flat.layout.numel == flat.vector.numel() == sum(s.numel for s in flat.layout.specs)


def test_fingerprint_is_stable_and_sensitive_to_shape() -> None:
    """Same architecture → same fingerprint (across inits); another shape → another fingerprint."""
    a = flatten_(_net()).layout.fingerprint
    torch.manual_seed(1)
    b = flatten_(_net()).layout.fingerprint
    c = flatten_(_net(hidden=9)).layout.fingerprint
    assert a == b
    assert a != c
    assert len(a) == 16


def test_model_hash_is_bit_exact() -> None:
    """Equal vectors hash equal; a one-ulp change changes the hash."""
    v = torch.randn(100)
    w = v.clone()
    assert model_hash(v) == model_hash(w)
    w[3] = torch.nextafter(w[3], torch.tensor(10.0))
    assert model_hash(v) != model_hash(w)
