"""Robust rules: each rule's defining property, checked with adversarial inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from gossip.algorithms import DSGD, Balance, ClippedGossip, CoordinateMedian, Krum, TrimmedMean, build_aggregator, weighted_average
from gossip.algorithms.balance import balance_threshold
from gossip.algorithms.clipped_gossip import clip_rows, he_radius
from gossip.algorithms.robust import coordinate_median, krum_scores, midpoint, multi_krum, stack_inputs, trimmed_mean
from gossip.config import AggregationConfig
from gossip.ids import NodeId
from gossip.learn.flat import Layout

P = 300


class Tally:
    """A Report that remembers what a rule said."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, count: int, action: str) -> None:
        self.calls.append((count, action))

    def total(self, action: str) -> int:
        return sum(c for c, a in self.calls if a == action)


def honest_and_byzantine(n_honest: int, n_byz: int, attack: str, seed: int = 0) -> tuple[torch.Tensor, dict[NodeId, torch.Tensor]]:
    """Own model (honest) + received: n_honest - 1 honest neighbours then n_byz attackers with ids after them."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(P, generator=g)
    honest = [centre + 0.1 * torch.randn(P, generator=g) for _ in range(n_honest)]
    if attack == "huge":
        byz = [torch.full((P,), 1e6 * (k + 1)) for k in range(n_byz)]
    elif attack == "sign-flip":
        byz = [-100.0 * honest[0] for _ in range(n_byz)]
    elif attack == "mixed-huge":
        byz = [1e6 * torch.randn(P, generator=g) for _ in range(n_byz)]
    else:
        raise ValueError(attack)
    received = {NodeId(i): v for i, v in enumerate(honest[1:] + byz, start=1)}
    return honest[0], received


CASES = [(3, 1), (4, 1), (5, 2), (6, 2), (7, 3)]  # (honest incl. self, Byzantine): strict honest majority


@pytest.mark.parametrize(("n_honest", "n_byz"), CASES)
@pytest.mark.parametrize("attack", ["huge", "sign-flip", "mixed-huge"])
def test_median_stays_inside_the_honest_range(n_honest: int, n_byz: int, attack: str) -> None:
    """With a strict honest majority, every coordinate of the median lies between the honest min and max."""
    local, received = honest_and_byzantine(n_honest, n_byz, attack)
    honest = torch.stack([local, *(received[NodeId(i)] for i in range(1, n_honest))])
    out = CoordinateMedian().aggregate(local, received, {})
    assert bool(((out >= honest.min(0).values) & (out <= honest.max(0).values)).all())


@pytest.mark.parametrize(("n_honest", "n_byz"), CASES)
@pytest.mark.parametrize("attack", ["huge", "sign-flip", "mixed-huge"])
def test_trimmed_mean_with_b_equal_f_stays_inside_the_honest_range(n_honest: int, n_byz: int, attack: str) -> None:
    """Trimming b = f per side leaves only values bracketed by honest ones."""
    local, received = honest_and_byzantine(n_honest, n_byz, attack)
    honest = torch.stack([local, *(received[NodeId(i)] for i in range(1, n_honest))])
    out = TrimmedMean(f=n_byz).aggregate(local, received, {})
    assert bool(((out >= honest.min(0).values - 1e-6) & (out <= honest.max(0).values + 1e-6)).all())


@pytest.mark.parametrize(("n_honest", "n_byz"), [(4, 1), (5, 1), (6, 2), (8, 3)])  # N >= 2f + 3
@pytest.mark.parametrize("attack", ["huge", "sign-flip", "mixed-huge"])
def test_krum_picks_an_honest_input_and_multi_krum_averages_only_honest_ones(n_honest: int, n_byz: int, attack: str) -> None:
    """Krum returns one honest input exactly; Multi-Krum (m = N - f) averages honest inputs only."""
    local, received = honest_and_byzantine(n_honest, n_byz, attack)
    honest = [local, *(received[NodeId(i)] for i in range(1, n_honest))]
    tally = Tally()
    out = Krum(f=n_byz, report=tally).aggregate(local, received, {})
    assert any(torch.equal(out, h) for h in honest)
    assert tally.total("discarded") == n_honest + n_byz - 2  # every other neighbour (the own model may be the pick)
    multi = Krum(f=n_byz, m=0).aggregate(local, received, {})
    h = torch.stack(honest)
    assert bool(((multi >= h.min(0).values - 1e-5) & (multi <= h.max(0).values + 1e-5)).all())


def test_krum_scores_match_a_brute_force_definition() -> None:
    """score(i) = sum of squared distances to the N - f - 2 nearest other inputs, on random data."""
    x = torch.randn(7, 20, dtype=torch.float64)
    f = 2
    brute = []
    for i in range(7):
        d = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(7) if j != i)
        brute.append(sum(d[: 7 - f - 2]))
    assert torch.allclose(krum_scores(x, f), torch.tensor(brute, dtype=torch.float64))


def test_multi_krum_m_is_capped_at_n_minus_f() -> None:
    """m is capped at N − f: asking for all 5 inputs averages the 4 best, so the far attacker (the worst score) stays out."""
    local, received = honest_and_byzantine(4, 1, "huge")
    out = Krum(f=1, m=5).aggregate(local, received, {})
    assert float(out.abs().max()) < 100


def test_krum_with_too_few_inputs_falls_back_to_median_then_to_self() -> None:
    """N < 2f + 3 (timeouts): the median while N >= 2f + 1, else the own model with every arrival discarded."""
    local, received = honest_and_byzantine(3, 1, "huge")  # N = 4 < 5
    assert torch.equal(Krum(f=1).aggregate(local, received, {}), CoordinateMedian().aggregate(local, received, {}))
    tally = Tally()
    local, received = honest_and_byzantine(1, 1, "huge")  # N = 2 < 3
    out = Krum(f=1, report=tally).aggregate(local, received, {})
    assert torch.equal(out, local) and out is not local
    assert tally.total("discarded") == 1


def test_trimmed_mean_equals_scipy_trim_mean() -> None:
    """Our vectorised trimmed mean is scipy's trim_mean with proportion b / N (an independent oracle)."""
    x = torch.randn(9, 50, dtype=torch.float64)
    for b in (0, 1, 2, 4):
        ours = trimmed_mean(x, b).numpy()
        ref = stats.trim_mean(x.numpy(), b / 9, axis=0)
        np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_trimmed_mean_beta_trims_a_fraction_of_what_arrived() -> None:
    """beta = 0.25 trims floor(0.25 N) per side: 2 of 8 inputs, 1 of 5."""
    assert TrimmedMean(f=1, beta=0.25).trim(8) == 2
    assert TrimmedMean(f=1, beta=0.25).trim(5) == 1
    assert TrimmedMean(f=3).trim(8) == 3


def test_trimmed_mean_with_too_few_inputs_keeps_the_own_model() -> None:
    """N <= 2b leaves nothing after trimming: keep the own model and count the arrivals as discarded."""
    tally = Tally()
    local, received = honest_and_byzantine(1, 1, "huge")
    out = TrimmedMean(f=1, report=tally).aggregate(local, received, {})
    assert torch.equal(out, local)
    assert tally.calls == [(1, "discarded")]


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values() -> None:
    """The epfml convention for even N, checked against numpy's median."""
    x = torch.randn(6, 40, dtype=torch.float64)
    np.testing.assert_allclose(coordinate_median(x).numpy(), np.median(x.numpy(), axis=0), rtol=1e-12)
    x = torch.randn(5, 40, dtype=torch.float64)
    np.testing.assert_allclose(coordinate_median(x).numpy(), np.median(x.numpy(), axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    "make", [lambda r: CoordinateMedian(report=r), lambda r: TrimmedMean(f=1, report=r)], ids=["median", "trimmed-mean"]
)
def test_coordinate_rules_flag_a_far_outlier_and_not_honest_neighbours(make) -> None:
    """The discarded count names the outlier (dropped in almost every coordinate), not the honest ones."""
    tally = Tally()
    local, received = honest_and_byzantine(4, 1, "sign-flip")
    make(tally).aggregate(local, received, {})
    assert tally.calls == [(1, "discarded")]
    tally.calls.clear()
    local, received = honest_and_byzantine(5, 0, "sign-flip")
    make(tally).aggregate(local, received, {})
    assert tally.calls == [(0, "discarded")]


def test_rules_with_only_the_own_model_return_it() -> None:
    """Nothing arrived (every neighbour timed out): every rule returns the own model, unmodified and not aliased."""
    local = torch.randn(P)
    for rule in (CoordinateMedian(), TrimmedMean(f=0), Krum(f=0), ClippedGossip(tau=1.0), ClippedGossip(), Balance()):
        out = rule.aggregate(local, {}, {})
        assert torch.equal(out, local) and out is not local


def test_pure_functions_refuse_an_empty_stack() -> None:
    """A rule is never fed fewer than one input: the pure functions say so instead of returning garbage."""
    empty = torch.empty(0, P)
    for fn in (coordinate_median, lambda x: trimmed_mean(x, 0), lambda x: krum_scores(x, 0)):
        with pytest.raises(ValueError):
            fn(empty)
    with pytest.raises(ValueError, match="Krum with f = 2 needs at least"):
        krum_scores(torch.randn(4, 3), 2)
    with pytest.raises(ValueError):
        multi_krum(torch.randn(5, 3), 1, 6)


@pytest.mark.parametrize(
    "rule", [CoordinateMedian(), TrimmedMean(f=1), Krum(f=1), Krum(f=1, m=0), ClippedGossip(), ClippedGossip(tau=0.5), Balance()]
)
def test_result_does_not_depend_on_arrival_order_and_inputs_are_untouched(rule) -> None:
    """Inputs are stacked in sorted id order, so a dict built in another order gives a bit-identical result."""
    local, received = honest_and_byzantine(5, 1, "sign-flip")
    weights = {j: 1 / 7 for j in received}
    before = {j: v.clone() for j, v in received.items()}
    a = rule.aggregate(local, received, weights)
    b = rule.aggregate(local, dict(reversed(list(received.items()))), dict(reversed(list(weights.items()))))
    assert torch.equal(a, b)
    assert all(torch.equal(received[j], before[j]) for j in received)


# --------------------------------------------------------------------------------------------------
# clipping


def test_clipping_bounds_every_neighbours_pull_by_its_weight_times_tau() -> None:
    """A huge neighbour moves the node by at most W_ib · τ; the total move is at most Σ_j W_ij · τ."""
    local, received = honest_and_byzantine(4, 1, "huge")
    weights = {j: 0.2 for j in received}
    tau = 0.5
    out = ClippedGossip(tau=tau).aggregate(local, received, weights)
    assert float(torch.linalg.vector_norm(out - local)) <= sum(weights.values()) * tau + 1e-5
    # and the attacker's share alone: compare with the same step without it
    honest_only = {j: v for j, v in received.items() if j != NodeId(4)}
    without = ClippedGossip(tau=tau).aggregate(local, honest_only, {j: 0.2 for j in honest_only})
    assert float(torch.linalg.vector_norm(out - without)) <= 0.2 * tau + 1e-5


def test_clipping_with_a_large_radius_is_plain_gossip() -> None:
    """Nobody farther than τ: the rule equals D-SGD mixing (difference form), weights and timeouts included."""
    local, received = honest_and_byzantine(4, 0, "huge")
    weights = {NodeId(1): 0.25, NodeId(2): 0.2}  # node 3 timed out: its weight stays on self
    received = {j: received[j] for j in weights}
    assert torch.allclose(ClippedGossip(tau=1e9).aggregate(local, received, weights), weighted_average(local, received, weights), atol=1e-6)


def test_clip_rows_scales_only_rows_longer_than_tau() -> None:
    """clip(u, τ) = u · min(1, τ/‖u‖), row by row; zero rows stay zero."""
    diffs = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    clipped, mask = clip_rows(diffs, 1.0)
    assert torch.allclose(clipped, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    assert mask.tolist() == [True, False, False]


def test_he_radius_matches_the_formula_on_a_hand_example() -> None:
    """Torus weights 1/5: δ = 1/5 (f = 1); the trusted set is self + the 3 nearest (total 4/5), so
    τ = sqrt((0.2·1² + 0.2·2² + 0.2·3²) / 0.2) = sqrt(14); the far neighbour (d = 100) is clipped."""
    d = torch.tensor([3.0, 1.0, 100.0, 2.0])
    w = torch.full((4,), 0.2)
    assert he_radius(d, w, 0.2, 0.2) == pytest.approx(math.sqrt(14))
    assert he_radius(d, w, 0.2, 0.0) == math.inf


def test_adaptive_he_clips_the_attacker_and_no_honest_neighbour() -> None:
    """On honest neighbours at similar distances plus one far attacker, exactly one input is clipped."""
    tally = Tally()
    local, received = honest_and_byzantine(5, 1, "huge")
    ClippedGossip(f=1, report=tally).aggregate(local, received, {j: 1 / 6 for j in received})
    assert tally.calls == [(1, "clipped")]


def test_second_largest_rule_clips_only_the_farthest() -> None:
    """f = 1, the authors' code: τ = second-largest neighbour distance, so only the farthest is clipped, to that distance."""
    tally = Tally()
    local = torch.zeros(2)
    received = {NodeId(1): torch.tensor([1.0, 0.0]), NodeId(2): torch.tensor([0.0, 2.0]), NodeId(3): torch.tensor([-10.0, 0.0])}
    out = ClippedGossip(rule="second-largest", report=tally).aggregate(local, received, {j: 0.25 for j in received})
    assert torch.allclose(out, 0.25 * (torch.tensor([1.0, 0.0]) + torch.tensor([0.0, 2.0]) + torch.tensor([-2.0, 0.0])))
    assert tally.calls == [(1, "clipped")]


# --------------------------------------------------------------------------------------------------
# BALANCE


def test_balance_discards_far_models_and_averages_the_close_ones() -> None:
    """Accepted: within γ·exp(-κλ)·‖x_i‖; result α x_i + (1-α) mean(accepted)."""
    tally = Tally()
    local = torch.ones(4)  # ‖x‖ = 2
    near = {NodeId(1): torch.full((4,), 1.5), NodeId(2): torch.full((4,), 0.5)}  # distance 1 each
    far = {NodeId(3): torch.full((4,), -1.0), NodeId(4): torch.full((4,), 50.0)}  # distance 4 and 98
    rule = Balance(gamma=0.7, kappa=1.0, alpha=0.5, progress=lambda: 0.0, report=tally)  # threshold 1.4
    out = rule.aggregate(local, {**near, **far}, {})
    assert torch.allclose(out, 0.5 * local + 0.5 * torch.ones(4))
    assert tally.calls == [(2, "discarded")]


def test_balance_threshold_tightens_with_progress() -> None:
    """λ = t/T going 0 → 1 shrinks the acceptance radius by exp(-κ): a neighbour accepted early is refused late."""
    local = torch.ones(4)
    assert balance_threshold(local, 0.7, 1.0, 1.0) == pytest.approx(0.7 * math.exp(-1) * 2)
    neighbour = {NodeId(1): torch.full((4,), 1.6)}  # distance 1.2: inside 1.4, outside 0.515
    clock = {"t": 0.0}
    rule = Balance(progress=lambda: clock["t"])
    assert not torch.equal(rule.aggregate(local, neighbour, {}), local)
    clock["t"] = 1.0
    assert torch.equal(rule.aggregate(local, neighbour, {}), local)


# --------------------------------------------------------------------------------------------------
# factory


@pytest.mark.parametrize(
    ("rule", "kind"),
    [
        ("dsgd", DSGD),
        ("median", CoordinateMedian),
        ("trimmed-mean", TrimmedMean),
        ("krum", Krum),
        ("multi-krum", Krum),
        ("clipped-gossip", ClippedGossip),
        ("balance", Balance),
    ],
)
def test_build_aggregator_knows_every_rule(rule: str, kind: type) -> None:
    """Every configurable rule name builds its class, with its parameters."""
    layout = Layout((), 0, b"\0" * 16)
    agg = build_aggregator(AggregationConfig(rule=rule, f=2, krum_m=3), layout)  # type: ignore[arg-type]
    assert isinstance(agg, kind)
    if rule == "krum":
        assert (agg.f, agg.m) == (2, 1)
    if rule == "multi-krum":
        assert (agg.f, agg.m) == (2, 3)


def test_stack_inputs_puts_the_own_model_first_then_sorted_ids() -> None:
    local = torch.zeros(2)
    received = {NodeId(5): torch.full((2,), 5.0), NodeId(2): torch.full((2,), 2.0)}
    assert stack_inputs(local, received)[:, 0].tolist() == [0.0, 2.0, 5.0]


def test_robust_rules_give_exactly_the_honest_value_when_all_agree() -> None:
    """No disagreement, no attacker: every rule returns the common model (they never invent values)."""
    x = torch.randn(P)
    received = {NodeId(j): x.clone() for j in range(1, 6)}
    for rule in itertools.chain([CoordinateMedian(), TrimmedMean(f=1), Krum(f=1), Krum(f=1, m=0), ClippedGossip(), Balance()]):
        assert torch.allclose(rule.aggregate(x, received, {j: 1 / 6 for j in received}), x, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# breakdown points: what tolerance.py's table promises, rule by rule


def far_attackers(n_honest: int, n_byz: int, magnitude: float) -> tuple[torch.Tensor, dict[NodeId, torch.Tensor], torch.Tensor]:
    """Own model + honest neighbours near one centre, then ``n_byz`` identical attackers at +magnitude."""
    local, received = honest_and_byzantine(n_honest, 0, "huge")
    honest = torch.stack([local, *received.values()])
    for k in range(n_byz):
        received[NodeId(n_honest + k)] = torch.full((P,), magnitude)
    return local, received, honest


RULES_WITH_A_COUNT = [  # (name, rule, honest inputs incl. self, attackers it withstands)
    ("median", CoordinateMedian(), 3, 2),
    ("trimmed-mean", TrimmedMean(f=2), 3, 2),
    ("clipped-gossip he", ClippedGossip(rule="he", f=2), 3, 2),
    ("clipped-gossip second-largest", ClippedGossip(rule="second-largest", f=2), 3, 2),
]


@pytest.mark.parametrize(("name", "rule", "n_honest", "b"), RULES_WITH_A_COUNT, ids=[r[0] for r in RULES_WITH_A_COUNT])
def test_a_rule_holds_with_its_tolerated_count_and_breaks_with_one_more(name: str, rule: object, n_honest: int, b: int) -> None:
    """The table's count is exact: with b attackers the node moves by less than the honest spread
    (~2.5 here) however far away they are (1e3 to 1e12); with b + 1 it follows them. (The adaptive
    clipping radii: the attackers then set the radius to their own distance and are never clipped.)"""

    def move(n_byz: int, magnitude: float) -> float:
        local, received, _ = far_attackers(n_honest, n_byz, magnitude)
        weights = {j: 1 / (len(received) + 1) for j in received}
        return float(torch.linalg.vector_norm(rule.aggregate(local, received, weights) - local))  # type: ignore[attr-defined]

    assert max(move(b, m) for m in (1e3, 1e6, 1e9, 1e12)) < 10
    assert move(b + 1, 1e9) > 1e8


def test_krum_picks_an_honest_input_with_f_attackers_and_can_pick_an_attacker_with_f_plus_1() -> None:
    """N = 5, f = 1 (N = 2f + 3). One attacker: an honest input is returned. Two attackers that sit
    together next to an honest model score 1 against its 2 and are returned: the guarantee is gone."""
    x0, x1, x2 = torch.tensor([0.0, 0.0]), torch.tensor([10.0, 0.0]), torch.tensor([0.0, 10.0])
    a = torch.tensor([10.0, 1.0])
    one = Krum(f=1).aggregate(x0, {NodeId(1): x1, NodeId(2): x2, NodeId(3): a, NodeId(4): torch.tensor([0.0, 9.0])}, {})
    assert any(torch.equal(one, h) for h in (x0, x1, x2, torch.tensor([0.0, 9.0])))
    two = Krum(f=1).aggregate(x0, {NodeId(1): x1, NodeId(2): x2, NodeId(3): a, NodeId(4): a.clone()}, {})
    assert torch.equal(two, a)


@pytest.mark.parametrize("rule", [ClippedGossip(tau=0.5), Balance()], ids=["clipped-gossip fixed tau", "balance"])
def test_rules_without_a_count_bound_move_a_node_a_bounded_step_even_among_attackers_only(rule: object) -> None:
    """Every neighbour Byzantine and 1e9 away: fixed-τ clipping moves the node by at most Σ_j W_ij τ,
    BALANCE by at most (1 − α) γ ‖x_i‖ (here it rejects them all) — whatever the number of attackers."""
    local = torch.randn(P, generator=torch.Generator().manual_seed(3))
    received = {NodeId(j): torch.full((P,), 1e9 * j) for j in range(1, 7)}
    weights = {j: 1 / 7 for j in received}
    step = float(torch.linalg.vector_norm(rule.aggregate(local, received, weights) - local))  # type: ignore[attr-defined]
    bound = 6 / 7 * 0.5 if isinstance(rule, ClippedGossip) else 0.5 * 0.7 * float(torch.linalg.vector_norm(local))
    assert step <= bound + 1e-5


@pytest.mark.parametrize("f", [1, 2, 3])
@pytest.mark.parametrize("clip_rule", ["he", "second-largest"])
def test_adaptive_radius_with_at_most_f_attackers_is_bounded_by_the_honest_distances(clip_rule: str, f: int) -> None:
    """With b ≤ f attackers (any magnitude) the radius never exceeds the farthest honest neighbour's
    distance D ("second-largest") or D·sqrt((1 − δ)/δ) ("he"), so each attacker's pull is bounded too."""
    g = torch.Generator().manual_seed(f)
    honest = {NodeId(j): torch.randn(P, generator=g) * j for j in range(1, f + 3)}
    for b in range(f + 1):
        received = {**honest, **{NodeId(100 + k): torch.full((P,), 10.0 ** (6 + k)) for k in range(b)}}
        w = torch.full((len(received),), 1 / (len(received) + 1), dtype=torch.float64)
        ids = sorted(received)
        distances = torch.linalg.vector_norm(torch.stack([received[j] for j in ids]), dim=1, dtype=torch.float64)
        tau = ClippedGossip(rule=clip_rule, f=f).radius(distances, w, 1 - float(w.sum()))
        far = max(float(torch.linalg.vector_norm(x, dtype=torch.float64)) for x in honest.values())
        delta = f / (len(received) + 1)
        assert tau <= (far if clip_rule == "second-largest" else far * math.sqrt((1 - delta) / delta)) + 1e-9


def test_second_largest_with_f_2_clips_two_attackers() -> None:
    """f = 2: the radius is the third-largest distance, so two far attackers are both clipped to an
    honest neighbour's distance (the authors' second-largest would let the nearer attacker through)."""
    tally = Tally()
    local = torch.zeros(2)
    received = {
        NodeId(1): torch.tensor([1.0, 0.0]),
        NodeId(2): torch.tensor([0.0, 2.0]),
        NodeId(3): torch.tensor([-100.0, 0.0]),
        NodeId(4): torch.tensor([0.0, -1000.0]),
    }
    out = ClippedGossip(rule="second-largest", f=2, report=tally).aggregate(local, received, {j: 0.2 for j in received})
    assert torch.allclose(
        out, 0.2 * (torch.tensor([1.0, 0.0]) + torch.tensor([0.0, 2.0]) + torch.tensor([-2.0, 0.0]) + torch.tensor([0.0, -2.0]))
    )
    assert tally.calls == [(2, "clipped")]


def test_adaptive_radius_with_fewer_than_f_plus_1_arrivals_keeps_the_own_model() -> None:
    """One neighbour arrived, f = 1: it may be the attacker and nothing honest measures it, so both
    adaptive radii are 0 and the node keeps its own model (the authors' code left it unclipped)."""
    local = torch.zeros(P)
    received = {NodeId(1): torch.full((P,), 1e6)}
    for clip_rule in ("he", "second-largest"):
        tally = Tally()
        out = ClippedGossip(rule=clip_rule, f=1, report=tally).aggregate(local, received, {NodeId(1): 0.25})
        assert torch.equal(out, local)
        assert tally.calls == [(1, "clipped")]


def test_second_largest_with_f_0_is_plain_gossip() -> None:
    """f = 0 budgets for no attacker: nothing is clipped, as with the "he" radius at δ = 0."""
    local, received = honest_and_byzantine(4, 1, "huge")
    weights = {j: 0.2 for j in received}
    assert torch.allclose(
        ClippedGossip(rule="second-largest", f=0).aggregate(local, received, weights), weighted_average(local, received, weights)
    )


# --------------------------------------------------------------------------------------------------
# Multi-Krum: what it guarantees, and what it does not


def alie_neighbourhood(n_honest: int, n_byz: int, seed: int = 0) -> tuple[torch.Tensor, dict[NodeId, torch.Tensor]]:
    """Own model + honest neighbours, then ``n_byz`` ALIE payloads μ − z σ with z = z_max(N, f)."""
    from gossip.algorithms.attacks import alie, alie_z_max

    local, received = honest_and_byzantine(n_honest, 0, "huge", seed=seed)
    honest = torch.stack([local, *received.values()])
    payload = alie(honest, max(0.0, alie_z_max(n_honest + n_byz, n_byz)))
    for k in range(n_byz):
        received[NodeId(n_honest + k)] = payload.clone()
    return local, received


def test_multi_krum_averages_in_attackers_that_sit_among_the_honest_inputs() -> None:
    """N = 11, f = 2, m = N − f = 9: the two ALIE payloads score best and are both averaged in —
    Multi-Krum bounds what it selects, it does not keep attackers out."""
    local, received = alie_neighbourhood(9, 2)
    inputs = stack_inputs(local, received)
    _, chosen = multi_krum(inputs, 2, 9)
    assert {9, 10} <= set(chosen.tolist())  # rows 9 and 10 are the attackers


@pytest.mark.parametrize("attack", ["alie", "huge", "sign-flip", "mixed-huge"])
def test_every_input_multi_krum_selects_scores_no_worse_than_the_worst_honest_input(attack: str) -> None:
    """The guarantee Multi-Krum gives with at most f attackers and m ≤ N − f; far attackers are never selected."""
    if attack == "alie":
        local, received = alie_neighbourhood(9, 2)
    else:
        local, received = honest_and_byzantine(9, 2, attack)
    inputs = stack_inputs(local, received)
    scores = krum_scores(inputs, 2)
    _, chosen = multi_krum(inputs, 2, 9)
    assert float(scores[chosen].max()) <= float(scores[:9].max())
    if attack != "alie":
        assert not {9, 10} & set(chosen.tolist())


# --------------------------------------------------------------------------------------------------
# numerics: finite inputs give finite, correct results up to the float32 limit


BIG = 3.0e38  # finite in float32 (max 3.4028e38); a + b of two of them is not


@pytest.mark.parametrize(("a", "b"), [(2.0e38, BIG), (-BIG, -2.0e38), (-BIG, BIG), (1.0, BIG)])
def test_median_of_an_even_count_does_not_overflow_near_the_float32_limit(a: float, b: float) -> None:
    """The two middle values of N = 4 are (a, b): their midpoint is finite and correct, where (a + b) / 2
    overflowed to inf for same-sign values and a + (b − a) / 2 would for opposite signs."""
    x = torch.tensor([[-BIG], [a], [b], [BIG]], dtype=torch.float32)
    expected = torch.tensor([(a + b) / 2], dtype=torch.float32)  # computed in Python's float64
    assert torch.equal(coordinate_median(x), expected)
    received = {NodeId(j): x[j] for j in (1, 2, 3)}
    assert torch.equal(CoordinateMedian().aggregate(x[0], received, {}), expected)


def test_midpoint_is_the_plain_formula_wherever_that_is_finite() -> None:
    """Bit for bit (a + b) / 2 on ordinary, tiny and subnormal float32 values: only overflow takes the other path."""
    g = torch.Generator().manual_seed(0)
    a = torch.cat([torch.randn(10_000, generator=g), torch.randn(1000, generator=g) * 1e-42, torch.randn(1000, generator=g) * 1e30])
    b = torch.cat([torch.randn(10_000, generator=g), torch.randn(1000, generator=g) * 1e-42, torch.randn(1000, generator=g) * 1e30])
    assert torch.equal(midpoint(a, b), (a + b) * 0.5)


def test_means_of_huge_finite_values_stay_finite() -> None:
    """Trimmed mean, Multi-Krum and BALANCE average values near 3e38: the float32 sum overflows, their mean does not."""
    g = torch.Generator().manual_seed(1)
    inputs = (BIG * (1 - 0.01 * torch.rand(7, P, generator=g))).to(torch.float32)
    exact = inputs.to(torch.float64).mean(dim=0)
    out = trimmed_mean(inputs, 1)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out.to(torch.float64), inputs.to(torch.float64).sort(dim=0).values[1:6].mean(dim=0), rtol=1e-6)
    averaged, chosen = multi_krum(inputs, 1, 6)
    assert torch.allclose(averaged.to(torch.float64), inputs[chosen].to(torch.float64).mean(dim=0), rtol=1e-6)
    local, received = inputs[0], {NodeId(j): inputs[j] for j in range(1, 7)}
    assert bool(torch.isfinite(Balance(gamma=0.1).aggregate(local, received, {})).all())
    assert bool(torch.isfinite(exact).all())


def test_krum_scores_of_huge_finite_inputs_do_not_tie_at_inf() -> None:
    """Squared distances of values near 3e38 overflow float32; in float64 they stay ordered, so Multi-Krum
    does not fall back to row order and pick the attackers that happen to come first."""
    g = torch.Generator().manual_seed(2)
    honest = 1e38 * (1 + 0.01 * torch.randn(5, P, generator=g))
    attackers = torch.full((2, P), -BIG)
    inputs = torch.cat([honest[:1], attackers, honest[1:]]).to(torch.float32)  # attackers in rows 1 and 2
    scores = krum_scores(inputs, 2)
    assert bool(torch.isfinite(scores).all())
    _, chosen = multi_krum(inputs, 2, 5)
    assert not {1, 2} & set(chosen.tolist())


@pytest.mark.parametrize("magnitude", [1e30, BIG])
def test_clipping_pulls_a_huge_attacker_in_by_exactly_tau(magnitude: float) -> None:
    """A payload whose float32 norm overflows (1e30 per coordinate) is clipped to τ, not zeroed — and so is
    one at 3e38, whose scale τ/‖u‖ lies below float32's normal range."""
    local, received = honest_and_byzantine(4, 0, "huge")
    weights = {j: 0.2 for j in received}
    direction = torch.ones(P) / math.sqrt(P)
    attacked = {**received, NodeId(9): local + magnitude}
    out = ClippedGossip(tau=0.5).aggregate(local, attacked, {**weights, NodeId(9): 0.2})
    without = ClippedGossip(tau=0.5).aggregate(local, received, weights)
    assert torch.allclose(out - without, 0.2 * 0.5 * direction, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# counts from fractions


@pytest.mark.parametrize(("beta", "n", "b"), [(0.29, 100, 29), (0.35, 180, 63), (0.25, 8, 2), (0.1, 9, 0), (0.49, 100, 49)])
def test_trimmed_mean_beta_count_is_the_exact_floor(beta: float, n: int, b: int) -> None:
    """b = ⌊β N⌋ of β as written: 0.29 × 100 is 28.999999999999996 in floats, and int() of it was 28."""
    assert TrimmedMean(f=1, beta=beta).trim(n) == b


def test_share_of_is_exact_for_every_two_decimal_fraction() -> None:
    """⌊x N⌋ and ⌈x N⌉ against exact rational arithmetic, for x = 0.01..0.99 and N up to 1000."""
    from fractions import Fraction

    from gossip.config import share_of

    for k in range(1, 100):
        x = k / 100
        for n in range(1001):
            exact = Fraction(k, 100) * n
            assert share_of(x, n) == math.floor(exact) and share_of(x, n, up=True) == math.ceil(exact), (x, n)
    assert share_of(1e-5, 300_000) == 3 and share_of(2.5e-7, 4_000_000, up=True) == 1
