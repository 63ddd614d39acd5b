"""What CURVE costs: time per round with and without ``[security] curve``, the same workload, interleaved.

    .venv/bin/python bench/curve.py [--repeat 3] [--small-rounds 300] [--large-rounds 100]

The workload of ``bench/round_time.py`` (8 node processes on a ring, one SGD step a round, a 15k and a
1M-parameter MLP on synthetic data), run by ``gossip launch`` once in the clear and once with CURVE
(keys made by the launcher in the run directory), the two variants alternating so that both see the
same machine. Every figure is the median over repeats of the steady-state mean per round (warm-up
rounds and the final, evaluating round skipped), from the nodes' own records: wall time per round, the
exchange phase (send + wait: where encryption shows) and the CPU per round of a node's process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit import RunFigures, median_figures, ring_workload, run_measured

WORKLOADS = {"small": (64, (200,)), "large": (1000, (1000,))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--small-rounds", type=int, default=300)
    p.add_argument("--large-rounds", type=int, default=100)
    args = p.parse_args()
    rounds = {"small": args.small_rounds, "large": args.large_rounds}
    runs: dict[tuple[str, bool], list[RunFigures]] = {}
    for r in range(args.repeat):
        for name, (features, hidden) in WORKLOADS.items():
            for curve in (False, True):
                figures = run_measured(
                    f"{name}{' curve' if curve else ''}",
                    ring_workload(args.nodes, rounds[name], features, hidden, **{"security.curve": curve}),
                )
                runs.setdefault((name, curve), []).append(figures)
                print(f"  repeat {r + 1}: {name:5} curve={curve!s:5} {figures.round_ms:.2f} ms/round", file=sys.stderr, flush=True)
    print(f"\n{args.nodes} nodes on a ring, medians of {args.repeat} interleaved runs\n")
    print(
        "| model | params | ms/round plain | ms/round CURVE | CURVE / plain | send+wait ms plain | send+wait ms CURVE | CPU ms/round plain | CPU ms/round CURVE |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in WORKLOADS:
        plain, curve = median_figures(runs[(name, False)]), median_figures(runs[(name, True)])

        def exchange(f: RunFigures) -> float:
            return f.phases_ms["send_s"] + f.phases_ms["wait_s"]

        print(
            f"| {name} | {plain.params:,} | {plain.round_ms:.2f} | {curve.round_ms:.2f} | {curve.round_ms / plain.round_ms:.2f} "
            f"| {exchange(plain):.2f} | {exchange(curve):.2f} | {plain.cpu_ms:.2f} | {curve.cpu_ms:.2f} |"
        )


if __name__ == "__main__":
    main()
