"""Attack payloads: the formulas of the papers, and the dissensus attack's net effect on its target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gossip.algorithms import weighted_average
from gossip.algorithms.attacks import (
    Alie,
    Dissensus,
    GaussianNoise,
    Ipm,
    SignFlip,
    Silent,
    Target,
    alie,
    alie_z_max,
    build_attack,
    flip_labels,
    ipm,
    neighbourhood_pull,
)
from gossip.config import ByzantineConfig
from gossip.ids import NodeId
from gossip.topology import parse_spec


@pytest.mark.parametrize(
    ("n", "f", "z"),
    [
        (10, 2, 0.0),
        (12, 1, -0.114),
        (16, 3, 0.097),
        (20, 4, 0.157),
        (25, 5, 0.253),
        (50, 12, 0.336),
        (50, 24, 1.426),
        (4, 1, -0.431),
        (5, 1, 0.0),
    ],
)
def test_alie_z_max_matches_the_reference_table(n: int, f: int, z: float) -> None:
    """REFERENCES §4.2: z_max = Φ⁻¹((n - f - s)/(n - f)), s = floor(n/2 + 1) - f (e.g. n = 50, f = 12 → 0.336).
    The epfml code's formula, not the paper's Φ⁻¹((n − s)/n), which gives 0.583 and 0.253 for the
    last cases of 50/12 and 5/1; the raw quantile is negative for even n with f = 1."""
    assert alie_z_max(n, f) == pytest.approx(z, abs=5e-4)


@pytest.mark.parametrize(("n", "f"), [(4, 1), (6, 1), (12, 1)])
def test_alie_role_clamps_a_negative_z_max_to_the_honest_mean(n: int, f: int) -> None:
    """Even n with f = 1 gives a negative quantile (n = 4: −0.431): the role sends the honest mean (z = 0),
    not a payload |z| σ above it."""
    honest = {NodeId(k): torch.randn(8, dtype=torch.float64) for k in (1, 3, 4)}  # what the attacker (node 2) received
    target = Target(NodeId(1), {NodeId(k): 1 / n for k in range(2, n + 1)}, frozenset({NodeId(2)}))
    assert target.inputs == n and len(target.byzantine) == f and alie_z_max(n, f) < 0
    assert Alie().z_for(target) == 0.0
    out = Alie().payloads(0, torch.zeros(8, dtype=torch.float64), honest, [target])
    assert torch.allclose(out[NodeId(1)], torch.stack([honest[k] for k in sorted(honest)]).mean(0))


def test_alie_role_keeps_a_positive_z_max_and_a_fixed_negative_z() -> None:
    """The clamp only replaces the formula's negative values: n = 16, f = 3 keeps 0.097, and alie_z = −2 is sent as asked."""
    deg15 = Target(NodeId(1), {NodeId(k): 1 / 16 for k in range(2, 17)}, frozenset({NodeId(2), NodeId(3), NodeId(4)}))
    assert Alie().z_for(deg15) == pytest.approx(alie_z_max(16, 3)) and Alie().z_for(deg15) > 0
    assert Alie(z=-2.0).z_for(deg15) == -2.0


def test_alie_z_max_refuses_degenerate_sizes() -> None:
    """n = 2, f = 1 gives the quantile 0: no finite z exists, and the function says so."""
    with pytest.raises(ValueError):
        alie_z_max(2, 1)
    with pytest.raises(ValueError):
        alie_z_max(5, 5)


def test_alie_payload_is_mean_minus_z_std_per_coordinate() -> None:
    """μ − z σ over the honest models (σ with Bessel's correction, as torch.std and the epfml code)."""
    honest = torch.randn(5, 30, dtype=torch.float64)
    expected = honest.numpy().mean(0) - 1.5 * honest.numpy().std(0, ddof=1)
    np.testing.assert_allclose(alie(honest, 1.5).numpy(), expected, rtol=1e-12)


def test_alie_role_uses_the_targets_local_n_and_f() -> None:
    """Per target: n = d_i + 1 and f = its Byzantine neighbours; a 4-regular target with one attacker gets z = 0."""
    honest = {NodeId(1): torch.randn(8), NodeId(2): torch.randn(8), NodeId(5): torch.randn(8)}
    deg4 = Target(NodeId(1), {NodeId(k): 0.2 for k in (0, 2, 3, 4)}, frozenset({NodeId(0)}))
    deg15 = Target(NodeId(2), {NodeId(k): 1 / 16 for k in range(3, 18)}, frozenset({NodeId(3), NodeId(4)}))
    out = Alie().payloads(0, torch.zeros(8), honest, [deg4, deg15])
    stack = torch.stack([honest[j] for j in sorted(honest)])
    assert torch.allclose(out[NodeId(1)], stack.mean(0))
    assert torch.allclose(out[NodeId(2)], alie(stack, alie_z_max(16, 2)))
    fixed = Alie(z=10.0).payloads(0, torch.zeros(8), honest, [deg4])
    assert torch.allclose(fixed[NodeId(1)], alie(stack, 10.0))


def test_ipm_payload_is_minus_epsilon_times_the_honest_mean() -> None:
    honest = torch.randn(4, 10)
    assert torch.allclose(ipm(honest, 0.1), -0.1 * honest.mean(0))
    out = Ipm(0.5).payloads(
        0, torch.zeros(10), {NodeId(j): honest[j] for j in range(4)}, [Target(NodeId(0), {NodeId(9): 0.5}, frozenset({NodeId(9)}))]
    )
    assert torch.allclose(out[NodeId(0)], -0.5 * honest.mean(0))


def test_sign_flip_gaussian_and_label_flip_formulas() -> None:
    """−s·x; x + σξ with the configured σ; y → K − 1 − y (an involution)."""
    x = torch.randn(1000)
    targets = [Target(NodeId(1), {NodeId(0): 0.5}, frozenset({NodeId(0)}))]
    assert torch.equal(SignFlip(3.0).payloads(0, x, {}, targets)[NodeId(1)], -3.0 * x)
    noisy = GaussianNoise(2.0, torch.Generator().manual_seed(1)).payloads(0, x, {}, targets)[NodeId(1)]
    assert float((noisy - x).std()) == pytest.approx(2.0, rel=0.1)
    y = np.arange(10)
    assert flip_labels(y, 10).tolist() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert np.array_equal(flip_labels(flip_labels(y, 10), 10), y)


def test_silent_sends_nothing_from_its_round_on() -> None:
    """from_round = 3: honest-looking until round 2, then nothing (a crash without a bye)."""
    targets = [Target(NodeId(1), {NodeId(0): 0.5}, frozenset({NodeId(0)}))]
    x = torch.ones(3)
    assert Silent(3).payloads(2, x, {}, targets) == {NodeId(1): x}
    assert Silent(3).payloads(3, x, {}, targets) == {}
    assert Silent(0).payloads(0, x, {}, targets) == {}


def _targets_from(topology_spec: str, n: int, attackers: set[int], attacker: int) -> list[Target]:
    topo = parse_spec(topology_spec, n=n)
    out = []
    for j in topo.neighbours(attacker):
        if j in attackers:
            continue
        row = topo.mixing_weights(j, "metropolis")
        weights = {NodeId(k): float(w) for k, w in row.items() if k != j}
        out.append(Target(NodeId(j), weights, frozenset(NodeId(k) for k in weights if k in attackers)))
    return out


@pytest.mark.parametrize("attackers", [{0}, {0, 5}])
def test_dissensus_net_effect_on_a_dsgd_target_is_one_minus_epsilon_times_its_pull(attackers: set[int]) -> None:
    """He et al.: with the attackers' payloads mixed in, target i moves by (1 − ε) Σ_honest W_ik (x_k − x_i):
    for ε = 1.5, half a gossip step *away* from its honest neighbours. Exact on a complete graph, where
    the attackers see every honest model."""
    n = 6
    g = torch.Generator().manual_seed(0)
    x = {NodeId(k): torch.randn(20, generator=g, dtype=torch.float64) for k in range(n) if k not in attackers}
    attack = Dissensus(1.5)
    payloads = {
        b: attack.payloads(0, torch.zeros(20, dtype=torch.float64), x, _targets_from("complete", n, attackers, b)) for b in attackers
    }
    for i in x:
        row = parse_spec("complete", n=n).mixing_weights(i, "metropolis")
        weights = {NodeId(k): float(w) for k, w in row.items() if k != i}
        received = {k: (payloads[k][i] if k in attackers else x[k]) for k in weights}
        mixed = weighted_average(x[i], received, weights)
        honest_k = [k for k in sorted(weights) if k not in attackers]
        pull = neighbourhood_pull(x[i], [x[k] for k in honest_k], [weights[k] for k in honest_k])
        assert torch.allclose(mixed, x[i] + (1 - 1.5) * pull, atol=1e-10)


def test_dissensus_estimates_the_honest_models_it_cannot_see() -> None:
    """On a torus the attacker shares no neighbour with its target: every x_k is replaced by the mean of
    the honest models the attacker received (an estimate, documented in gossip.algorithms.attacks)."""
    targets = _targets_from("torus:4x4", 16, {0}, 0)
    honest = {t.id: torch.randn(5, dtype=torch.float64) for t in targets}
    out = Dissensus(1.5).payloads(0, torch.zeros(5, dtype=torch.float64), honest, targets)
    mean = torch.stack([honest[j] for j in sorted(honest)]).mean(0)
    for t in targets:
        x_i = honest[t.id]
        pull = sum(w * (mean - x_i) for k, w in t.weights.items() if k not in t.byzantine)
        assert torch.allclose(out[t.id], x_i - 1.5 * pull / t.weights[NodeId(0)])


def test_omniscient_attacks_without_honest_models_send_their_own() -> None:
    """Nothing arrived in time: ALIE, IPM and dissensus send the attacker's own model (not nothing)."""
    own = torch.randn(4)
    targets = [Target(NodeId(1), {NodeId(0): 0.5}, frozenset({NodeId(0)}))]
    for attack in (Alie(), Ipm(), Dissensus()):
        assert torch.equal(attack.payloads(0, own, {}, targets)[NodeId(1)], own)


@pytest.mark.parametrize("name", ["sign-flip", "gaussian", "label-flip", "alie", "ipm", "dissensus", "silent"])
def test_build_attack_knows_every_configurable_attack(name: str) -> None:
    attack = build_attack(ByzantineConfig(nodes=(1,), attack=name), seed=0)  # type: ignore[arg-type]
    assert attack.name == name
    assert attack.omniscient == (name in ("alie", "ipm", "dissensus"))
