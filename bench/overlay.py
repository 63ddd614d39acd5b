"""Open membership under churn, simulated: does the links graph stay connected, and how fast does it heal?

    .venv/bin/python bench/overlay.py [--nodes 1000] [--seconds 360] [--step 0.25] [--every 30] [--only churn]

``gossip.topology.churn`` runs N membership state machines (the ones a node runs) in memory, messages delivered
one step later. Three scenarios, each started by a one-address bootstrap (member 0 alone, everyone else joining
through its address at t = 0):

- ``static``: nothing more happens;
- ``churn``: from t = 60 s, 10 % of the members replaced every 100 s at random times, half leaving gracefully,
  half crashing, each replaced by a newcomer given one random live member's address;
- ``mass``: at t = 60 s, 30 % of the members crash at once.

Per scenario a table every ``--every`` seconds: live members, whether the links graph (a link held by either end,
both ends live) is connected, and whether it is once newcomers (joined < 5 s ago, still finding links) are set
aside; the largest component; links per member (min/mean/max), members below ``degree`` and the longest such
stretch; isolated members; links held to members that are gone; how many views hold each member (min/mean/max);
view entries naming members that are gone. Snapshots are taken every second; a summary table gives, over the
snapshots after t = 60 s, the share connected, the worst largest component, the most members below degree, the
longest stretch below it, the time to heal after the mass failure (connected, everyone at degree, no dangling
link), messages per member per second, and the simulator's wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.topology.churn import (
    ChurnEvent,
    ChurnResult,
    SimSettings,
    Snapshot,
    bootstrap_trace,
    churn_trace,
    healed_at,
    mass_failure,
    merge,
    simulate,
)

DISTURB_S = 60.0  # when churn starts, or the mass failure happens


def scenarios(n: int, seconds: float, seed: int) -> dict[str, Iterable[ChurnEvent]]:
    """Each scenario's trace."""
    boot = bootstrap_trace(n)
    return {
        "static": boot,
        "churn": merge(boot, churn_trace(n, 0.1, 100.0, seed, start_s=DISTURB_S, until_s=seconds)),
        "mass": merge(boot, mass_failure(range(n), 0.3, DISTURB_S, seed)),
    }


def over_time(snapshots: tuple[Snapshot, ...], every: float) -> None:
    print(
        "| t s | live | connected | settled connected | largest % | links min/mean/max | below degree (longest s) | isolated | dangling | in views min/mean/max | stale view entries |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in snapshots:
        if s.time_s % every > 1e-6 and not (DISTURB_S < s.time_s <= DISTURB_S + 10):
            continue  # every --every s, and each second of the first ten after the disturbance
        print(
            f"| {s.time_s:g} | {s.live} | {'yes' if s.connected else 'no'} | {'yes' if s.settled_connected else 'no'} "
            f"| {100 * s.largest_fraction:.1f} | {s.degree_min}/{s.degree_mean:.2f}/{s.degree_max} | {s.below_degree} ({s.longest_below_s:.1f}) "
            f"| {s.isolated} | {s.dangling} | {s.view_in_min}/{s.view_in_mean:.1f}/{s.view_in_max} | {s.stale_view} |"
        )


def summary_row(name: str, result: ChurnResult, wall_s: float, seconds: float) -> str:
    after = [s for s in result.snapshots if s.time_s > DISTURB_S] or list(result.snapshots)
    share = sum(s.connected for s in after) / len(after)
    settled = sum(s.settled_connected for s in after) / len(after)
    heal = healed_at(result.snapshots, DISTURB_S) if name == "mass" else None
    heal_text = f"{heal - DISTURB_S:g}" if heal is not None else ("never" if name == "mass" else "")
    mean_live = sum(s.live for s in result.snapshots) / len(result.snapshots)
    per_member_s = sum(result.messages.values()) / mean_live / seconds
    return (
        f"| {name} | {100 * share:.0f} | {100 * settled:.0f} | {100 * min(s.largest_fraction for s in after):.1f} "
        f"| {max(s.below_degree for s in after)} | {max(s.longest_below_s for s in after):.1f} | {max(s.isolated for s in after)} "
        f"| {heal_text} | {result.counts.get('failures', 0)} / {result.counts.get('leaves', 0)} | {per_member_s:.1f} | {wall_s:.1f} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=360.0, help="simulated seconds per scenario")
    p.add_argument("--step", type=float, default=0.25, help="the clock's step; messages arrive one step later")
    p.add_argument("--loss", type=float, default=0.0, help="probability that a message is lost")
    p.add_argument("--every", type=float, default=30.0, help="seconds between the rows printed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["static", "churn", "mass"], nargs="+")
    args = p.parse_args()
    settings = SimSettings(step_s=args.step, loss=args.loss, sample_every_s=1.0, seed=args.seed)
    rows = []
    for name, trace in scenarios(args.nodes, args.seconds, args.seed).items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        result = simulate(trace, args.seconds, settings)
        wall_s = time.perf_counter() - start
        print(f"\n## {name}: {args.nodes} members, {args.seconds:g} simulated s, step {args.step:g} s, loss {args.loss:g}\n")
        over_time(result.snapshots, args.every)
        rows.append(summary_row(name, result, wall_s, args.seconds))
    m = settings.membership
    print(
        f"\n## summary (degree {m.degree}, max_degree {m.max_degree}, view_size {m.view_size}, shuffle_length {m.shuffle_length}, "
        f"shuffle_period_s {m.shuffle_period_s:g}, heartbeat_s {m.heartbeat_s:g}, failure_timeout_s {m.failure_timeout_s:g}; after t = {DISTURB_S:g} s)\n"
    )
    print(
        "| scenario | connected % of snapshots | settled connected % | worst largest % | most below degree | longest below degree s | most isolated | heal s | failures / leaves seen | messages per member per s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
