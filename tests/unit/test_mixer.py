"""The node's mixer (gossip.node.mixer): the in-place D-SGD capability and the fresh-vector path give one answer."""

from __future__ import annotations

import torch

from gossip.algorithms import weighted_average
from gossip.config import RunConfig, load_config
from gossip.ids import NodeId
from gossip.learn.flat import flatten_
from gossip.node.mixer import Mixer
from gossip.ops.metrics import NodeMetrics


def _mixer(cfg: RunConfig) -> Mixer:
    torch.manual_seed(0)
    flat = flatten_(torch.nn.Linear(4, 3))
    return Mixer(cfg, flat, NodeMetrics(0, [1, 2], cfg.aggregation.rule), lambda: 0.0)


def test_dsgd_mixes_in_place_into_the_weighted_average_and_returns_the_step() -> None:
    """D-SGD takes the in-place path: the node's own buffer ends as the weighted average, and the distance is the step's norm."""
    mixer = _mixer(load_config(env={}, overrides={}))
    vector = mixer.flat.vector
    buffer = vector.data_ptr()
    before = vector.clone()
    received = {NodeId(1): torch.randn_like(vector), NodeId(2): torch.randn_like(vector)}
    weights = {NodeId(1): 0.25, NodeId(2): 0.25}
    distance = mixer.mix(received, weights)
    expected = weighted_average(before, received, weights)
    assert vector.data_ptr() == buffer
    assert torch.allclose(vector, expected, atol=1e-6)
    assert abs(distance - float(torch.linalg.vector_norm(expected - before))) < 1e-5


def test_a_rule_without_the_in_place_capability_is_copied_into_the_vector() -> None:
    """A robust rule returns a fresh vector: the mixer copies it in and measures the distance to the neighbourhood average."""
    mixer = _mixer(load_config(env={}, overrides={"aggregation.rule": "median"}))
    vector = mixer.flat.vector
    before = vector.clone()
    received = {NodeId(1): before + 1.0, NodeId(2): before + 3.0}
    weights = {NodeId(1): 1 / 3, NodeId(2): 1 / 3}
    distance = mixer.mix(received, weights)
    assert torch.allclose(vector, before + 1.0)  # the coordinate median of x, x + 1, x + 3
    assert abs(distance - float(torch.linalg.vector_norm(weighted_average(before, received, weights) - before))) < 1e-5


def test_a_dsgd_mix_with_a_finite_distance_proves_the_mixed_vector_finite() -> None:
    """The round skips its finiteness pass after a D-SGD mix whose distance is finite: the mixer says the vector is finite."""
    mixer = _mixer(load_config(env={}, overrides={}))
    vector = mixer.flat.vector
    mixer.mix({NodeId(1): torch.randn_like(vector), NodeId(2): torch.randn_like(vector)}, {NodeId(1): 1 / 3, NodeId(2): 1 / 3})
    assert mixer.finite
    assert bool(torch.isfinite(vector).all())


def test_a_dsgd_mix_that_overflows_is_not_taken_for_finite() -> None:
    """Finite models 3e38 apart overflow float32 in the lerp: the distance is not finite, and neither is the claim."""
    mixer = _mixer(load_config(env={}, overrides={}))
    vector = mixer.flat.vector
    vector.fill_(-3e38)
    mixer.mix({NodeId(1): torch.full_like(vector, 3e38)}, {NodeId(1): 0.9})
    assert not mixer.finite
    assert not bool(torch.isfinite(vector).all())


def test_the_pull_form_of_a_mix_that_overflows_is_not_taken_for_finite() -> None:
    """Weights with no self share take the pull form: its overflow, in the final addition, is caught the same way."""
    mixer = _mixer(load_config(env={}, overrides={}))
    vector = mixer.flat.vector
    vector.fill_(3e38)
    received = {NodeId(1): torch.full_like(vector, 3.4e38), NodeId(2): torch.full_like(vector, 3.4e38)}
    mixer.mix(received, {NodeId(1): 0.5, NodeId(2): 1.0})  # x + 0.5·(y − x) + (y − x): 3.6e38, past float32's largest
    assert not mixer.finite
    assert not bool(torch.isfinite(vector).all())


def test_a_rule_that_returns_a_fresh_vector_proves_nothing() -> None:
    """The median's distance is to the neighbourhood average, not the step: the node checks the vector itself."""
    mixer = _mixer(load_config(env={}, overrides={"aggregation.rule": "median"}))
    vector = mixer.flat.vector
    mixer.mix({NodeId(1): vector + 1.0, NodeId(2): vector + 3.0}, {NodeId(1): 1 / 3, NodeId(2): 1 / 3})
    assert not mixer.finite
