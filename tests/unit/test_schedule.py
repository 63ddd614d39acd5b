"""Communication schedules and the one-peer exponential graph: pure functions every node evaluates alike."""

from __future__ import annotations

import numpy as np
import pytest

from gossip.config import RunConfig, load_config
from gossip.errors import ConfigError
from gossip.topology import parse_spec
from gossip.topology.schedule import Schedule


def schedule(spec: str, n: int, rounds: int = 40, **overrides: object) -> Schedule:
    cfg = load_config(env={}, overrides={"topology.spec": spec, "run.nodes": n, "training.rounds": rounds, **overrides})
    return Schedule(cfg, parse_spec(cfg.topology.spec, n=n, seed=cfg.run.seed))


def round_matrix(s: Schedule, t: int, topology_w: np.ndarray | None = None) -> np.ndarray:
    """The mixing matrix W^(t) the schedule realises (row i: what node i's mix does)."""
    w = np.eye(s.n)
    for i in range(s.n):
        ex = s.exchange(i, t)
        weights = ex.weights if ex.weights is not None else {j: topology_w[i, j] for j in ex.expect_from}  # type: ignore[index]
        for j in ex.expect_from:
            w[i, j] = weights[j]
            w[i, i] -= weights[j]
    return w


@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_one_peer_exponential_product_of_log2n_rounds_is_the_exact_average(n: int) -> None:
    """REFERENCES §8 row 4: the product of log2 n consecutive one-peer rounds is (1/n)·11ᵀ, from any
    starting round (c mod τ cycles through every hop)."""
    s = schedule("one-peer-exponential", n)
    tau = int(np.log2(n))
    for start in (0, 1, tau - 1):
        product = np.eye(n)
        for t in range(start, start + tau):
            product = round_matrix(s, t) @ product
        assert np.allclose(product, np.full((n, n), 1.0 / n), atol=1e-15)
    single = round_matrix(s, 0)
    assert np.allclose(single.sum(0), 1) and np.allclose(single.sum(1), 1)  # doubly stochastic every round


def test_one_peer_exponential_is_not_exact_when_n_is_not_a_power_of_two() -> None:
    """n = 6: the rounds still mix (doubly stochastic) but ceil(log2 n) of them do not average exactly."""
    s = schedule("one-peer-exponential", 6)
    product = np.eye(6)
    for t in range(3):
        product = round_matrix(s, t) @ product
    assert not np.allclose(product, np.full((6, 6), 1 / 6), atol=1e-3)


def test_one_peer_exponential_refuses_a_graph_without_its_edges() -> None:
    """The time-varying graph must be a subgraph of the topology: a ring lacks i ~ i+4."""
    with pytest.raises(ConfigError, match="lacks"):
        schedule("ring", 8, **{"topology.peers": "one-peer-exponential"})


def test_one_peer_hops_advance_per_communication_round_under_periodic() -> None:
    """With period 3, rounds 2, 5, 8 are the communications c = 0, 1, 2: hops 1, 2, 4."""
    s = schedule("one-peer-exponential", 8, **{"schedule.mode": "periodic", "schedule.period": 3})
    assert [s.exchange(0, t).send_to for t in (2, 5, 8, 11)] == [(1,), (2,), (4,), (1,)]
    assert all(not s.exchange(0, t).communicates for t in (0, 1, 3, 4))


SCHEDULES = [
    {"schedule.mode": "every"},
    {"schedule.mode": "periodic", "schedule.period": 4},
    {"schedule.mode": "random", "schedule.probability": 0.3},
    {"schedule.mode": "window", "schedule.window_start": 0.5, "schedule.window_end": 0.75},
    {"schedule.mode": "window", "schedule.window_start": 0.0, "schedule.window_end": 0.1, "schedule.outside": "random"},
    {"schedule.mode": "none"},
]


@pytest.mark.parametrize("overrides", SCHEDULES)
@pytest.mark.parametrize("spec", ["ring", "complete", "er:p=0.4"])
def test_every_send_is_expected_and_every_expectation_is_sent(spec: str, overrides: dict[str, object]) -> None:
    """For all nodes and rounds: j sends to i exactly when i waits for j — nobody waits for a model
    that is never sent, and nothing is sent that the receiver would refuse — and ``expects`` agrees."""
    s = schedule(spec, 8, **overrides)
    for t in range(s.rounds):
        plans = [s.exchange(i, t) for i in range(s.n)]
        sends = {(i, j) for i in range(s.n) for j in plans[i].send_to}
        expects = {(j, i) for i in range(s.n) for j in plans[i].expect_from}
        assert sends == expects
        for i in range(s.n):
            for j in range(s.n):
                assert s.expects(i, j, t) == (j in plans[i].expect_from)


def test_random_pull_takes_one_random_neighbour_with_probability_p() -> None:
    """Over 16 nodes × 400 rounds the pull rate is p (±3σ) and every pull targets a neighbour uniformly."""
    s = schedule("ring", 16, rounds=400, **{"schedule.mode": "random", "schedule.probability": 0.2})
    pulls = [(i, s.pull(i, t)) for i in range(16) for t in range(400)]
    taken = [(i, j) for i, j in pulls if j is not None]
    rate = len(taken) / len(pulls)
    sigma = (0.2 * 0.8 / len(pulls)) ** 0.5
    assert abs(rate - 0.2) < 3 * sigma
    assert all(j in ((i + 1) % 16, (i - 1) % 16) for i, j in taken)
    left = sum(1 for i, j in taken if j == (i + 1) % 16) / len(taken)
    assert 0.45 < left < 0.55
    ex = s.exchange(3, 7)
    assert ex.weights is not None and all(w == 0.5 for w in ex.weights.values())


def test_window_and_periodic_rounds() -> None:
    """periodic 5: rounds 4, 9, ...; window [0.5, 0.75) of 40 rounds: 20..29, nothing outside."""
    p = schedule("ring", 4, **{"schedule.mode": "periodic", "schedule.period": 5})
    assert [t for t in range(40) if p.exchange(0, t).communicates] == list(range(4, 40, 5))
    w = schedule("ring", 4, **{"schedule.mode": "window", "schedule.window_start": 0.5, "schedule.window_end": 0.75})
    assert [t for t in range(40) if w.exchange(0, t).communicates] == list(range(20, 30))
    none = schedule("ring", 4, **{"schedule.mode": "none"})
    assert not any(none.exchange(i, t).communicates for i in range(4) for t in range(40))


def test_window_bounds_are_exact_shares_of_the_rounds() -> None:
    """window [0.29, 0.35) of 100 rounds is rounds 29..34: the float product 0.29 × 100 = 28.999… must not start it at 28."""
    w = schedule("ring", 4, rounds=100, **{"schedule.mode": "window", "schedule.window_start": 0.29, "schedule.window_end": 0.35})
    assert [t for t in range(100) if w.exchange(0, t).communicates] == list(range(29, 35))


@pytest.mark.parametrize("overrides", SCHEDULES)
def test_horizon_keeps_the_next_communication_rounds(overrides: dict[str, object]) -> None:
    """The inbox window [t, horizon] contains, for every node, its next ``ahead`` rounds with an arrival."""
    s = schedule("ring", 8, **overrides)
    ahead = 2
    for i in range(8):
        arrivals = [t for t in range(s.rounds) if s.exchange(i, t).expect_from]
        for t in range(s.rounds):
            upcoming = [r for r in arrivals if r > t][:ahead]
            h = s.horizon(i, t, ahead)
            assert h >= t + ahead and all(r <= h for r in upcoming)


def test_schedule_and_mode_combinations_are_validated() -> None:
    """Settings that cannot work together are one ConfigError line, before anything starts."""
    with pytest.raises(ConfigError, match="async"):
        load_config(env={}, overrides={"training.mode": "async", "schedule.mode": "periodic"})
    with pytest.raises(ConfigError, match="push_sum"):
        load_config(env={}, overrides={"training.push_sum": True})
    with pytest.raises(ConfigError, match="self_weight"):
        load_config(env={}, overrides={"training.mode": "async", "training.push_sum": True, "aggregation.rule": "variance"})
    with pytest.raises(ConfigError, match="random pull"):
        load_config(env={}, overrides={"topology.spec": "one-peer-exponential", "schedule.mode": "random"})
    with pytest.raises(ConfigError, match="window_start"):
        load_config(env={}, overrides={"schedule.window_start": 0.5, "schedule.window_end": 0.5})
    cfg = load_config(env={}, overrides={"topology.spec": "one-peer-exponential"})
    assert (cfg.topology.spec, cfg.topology.peers) == ("exponential", "one-peer-exponential")
    assert isinstance(cfg, RunConfig)
