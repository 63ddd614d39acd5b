"""A simulated open network without a run directory: deterministic given its seed, and every member starts."""

from __future__ import annotations

import pytest

from gossip.config import RunConfig, load_config
from gossip.run.simulate_open import ChurnPlan, simulate_open

pytestmark = pytest.mark.slow


def _cfg(seed: int) -> RunConfig:
    return load_config(
        None,
        overrides={
            "run.nodes": 6, "run.seed": seed, "topology.spec": "ring", "training.rounds": 40, "training.eval_every": 20,
            "membership.enabled": True, "training.mode": "async", "model.hidden": [16],
        },
    )  # fmt: skip


def test_an_open_simulation_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    """The trace, the protocol, the pushes and the batches are all seeded: one seed, one curve and overlay."""
    plan = ChurnPlan(0.34, 10)
    first = simulate_open(_cfg(1), plan)

    assert first.curve == simulate_open(_cfg(1), plan).curve
    assert first.overlay == simulate_open(_cfg(1), plan).overlay
    assert first.curve != simulate_open(_cfg(2), plan).curve


def test_without_churn_every_member_starts_and_stays() -> None:
    """``--churn 0``: the six members join through member 0, all start training and all are live at the end."""
    result = simulate_open(_cfg(0), ChurnPlan())

    assert result.members == 6 and result.finished == tuple(range(6))
    assert result.overlay.connected and result.overlay.degree_min >= 1


def test_a_newcomer_starts_from_the_average_of_its_started_neighbours_models() -> None:
    """As a real member does after its ``state_request``: the mean of the models of the neighbours it linked to."""
    from gossip.data.datasets import dataset_of
    from gossip.run.simulate_open import _Members
    from gossip.topology import topology_of

    cfg = _cfg(0).replace(model={"init": "independent"})  # distinct initial models: their average is none of them
    members = _Members(cfg, topology_of(cfg), dataset_of(cfg), 4, None)
    first, second = members.models.X[0].clone(), members.models.X[2].clone()
    members.start(0, [])
    members.start(2, [])
    members.start(3, [0, 2])

    assert not first.equal(second)
    assert members.models.X[3].allclose((first + second) / 2)
    assert members.synced_from[3] == (0, 2) and members.started == {0: 0, 2: 0, 3: 0}
