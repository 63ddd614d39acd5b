"""The churn simulator: its traces are deterministic and shaped as documented, and so are its runs."""

from __future__ import annotations

from collections import Counter

from gossip.topology.churn import SimSettings, bootstrap_trace, churn_trace, mass_failure, merge, simulate


def test_the_churn_trace_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    """Two generators with one seed yield the same events; another seed yields others."""
    first = list(churn_trace(100, 0.1, 50.0, seed=3, until_s=200.0))

    assert first == list(churn_trace(100, 0.1, 50.0, seed=3, until_s=200.0))
    assert first != list(churn_trace(100, 0.1, 50.0, seed=4, until_s=200.0))


def test_the_churn_trace_replaces_the_rate_each_period_half_gracefully_through_live_contacts() -> None:
    """Each period, rate x n members depart (half leave, half crash), each followed by a fresh newcomer whose
    contact is live at that time."""
    events = list(churn_trace(100, 0.1, 50.0, seed=1, until_s=100.0))
    live = set(range(100))

    for event in events:
        if event.kind == "join":
            assert event.node not in live and event.node >= 100 and event.contact in live
            live.add(event.node)
        else:
            live.remove(event.node)
    kinds = Counter(e.kind for e in events)
    assert kinds == {"join": 20, "leave": 10, "crash": 10}
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)


def test_a_simulation_is_deterministic_given_its_seed() -> None:
    """The same trace and settings give the same snapshots and counts."""

    def run() -> object:
        trace = merge(bootstrap_trace(40), mass_failure(range(40), 0.3, 10.0, seed=2))
        return simulate(trace, 20.0, SimSettings(step_s=0.5, sample_every_s=5.0, seed=2, loss=0.05))

    assert run() == run()


def test_a_mass_failure_is_measured_and_healed() -> None:
    """Right after 30 % crash at once the survivors hold dangling links; a few failure timeouts later the overlay is
    whole again (connected, everyone at degree, nothing dangling)."""
    trace = merge(bootstrap_trace(60), mass_failure(range(60), 0.3, 15.0, seed=5))

    result = simulate(trace, 40.0, SimSettings(step_s=0.25, sample_every_s=1.0, seed=5))

    at = {s.time_s: s for s in result.snapshots}
    assert at[15.0].live == 42 and at[15.0].dangling > 0
    healed = at[40.0]
    assert healed.connected and healed.below_degree == 0 and healed.dangling == 0
