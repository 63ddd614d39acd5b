"""The pure pieces of a simulated open network: the merge weights of pushes in order, the trace, the refusals."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from gossip.config import load_config
from gossip.errors import ConfigError
from gossip.run.simulate_open import ChurnPlan, check_open, open_trace, push_weights


def test_push_weights_equal_merging_each_arrival_with_weight_one_half_in_order() -> None:
    """A receiver's scale and the pushes' weights give what ``x ← (x + m) / 2`` per arrival, in order, gives."""
    receivers = [3, 5, 3, 3]
    x = {3: torch.tensor([8.0]), 5: torch.tensor([-4.0])}
    pushed = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([16.0]), torch.tensor([-2.0])]
    expected = dict(x)
    for r, m in zip(receivers, pushed, strict=True):
        expected[r] = (expected[r] + m) / 2

    scale, weights = push_weights(receivers)
    got = {r: x[r] * scale[r] for r in x}
    for r, m, w in zip(receivers, pushed, weights, strict=True):
        got[r] = got[r] + w * m

    assert scale == {3: 0.125, 5: 0.5}
    assert all(torch.equal(got[r], expected[r]) for r in x)


def test_the_open_trace_bootstraps_through_member_0_then_replaces_the_fraction_every_period() -> None:
    """Member 0 starts, the others join through it at 0; each period of ``every`` steps replaces ``fraction`` of the
    members, half leaving and half crashing, each by a newcomer given a live member."""
    trace = open_trace(20, ChurnPlan(0.1, 10), 0.1, 40, seed=1)

    assert trace[0].kind == "start" and trace[0].node == 0
    assert [(e.kind, e.contact) for e in trace[1:20]] == [("join", 0)] * 19
    churn = Counter(e.kind for e in trace[20:])
    assert churn == {"join": 8, "leave": 4, "crash": 4}
    assert all(e.time_s < 4.0 for e in trace)


def test_without_churn_the_trace_is_the_bootstrap_alone() -> None:
    """``--churn 0``: the initial members join and stay."""
    assert {e.kind for e in open_trace(5, ChurnPlan(), 0.1, 1000, seed=0)} == {"start", "join"}


@pytest.mark.parametrize(
    ("plan", "overrides", "message"),
    [
        (ChurnPlan(1.0), {}, "--churn is the fraction of members replaced per period, in [0, 1), not 1"),
        (ChurnPlan(-0.1), {}, "--churn is the fraction of members replaced per period, in [0, 1), not -0.1"),
        (ChurnPlan(0.1, 0), {}, "--churn-every is a number of rounds, at least 1, not 0"),
        (ChurnPlan(0.1), {"membership.enabled": False}, "--churn needs an open network"),
        (ChurnPlan(0.0, members=5), {"membership.enabled": False}, "--members needs an open network"),
        (ChurnPlan(0.1), {"training.push_sum": True}, "push-sum and Adam are for gossip launch"),
        (ChurnPlan(0.1), {"training.optimizer": "adam"}, "push-sum and Adam are for gossip launch"),
        (ChurnPlan(0.1, members=1), {}, "--churn needs at least 2 members"),
    ],
    ids=["churn-1", "churn-negative", "every-0", "churn-closed", "members-closed", "push-sum", "adam", "one-member"],
)
def test_churn_that_makes_no_sense_is_refused(plan: ChurnPlan, overrides: dict[str, object], message: str) -> None:
    """Each flag out of range, churn without an open network, and what the simulation leaves out: a ConfigError."""
    cfg = load_config(None, overrides={"run.nodes": 8, "membership.enabled": True, "training.mode": "async", **overrides})
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_open(cfg, plan)
