"""Round overhead: what a round costs beyond local training, for 10k / 1M / 10M parameters on an 8-node ring.

    .venv/bin/python bench/overhead.py [--repeat 3]

Same workload as bench/round_time.py (ring, weights 1/3, one SGD step of batch 32, synthetic data),
with MLPs of about 10k (64-128-10), 1M (1000-1000-10) and 10M (1000-10000-10) parameters, run
interleaved ``--repeat`` times; medians. Two views of the overhead:

- **CPU share** (the figure to read on a machine with fewer cores than nodes): of the CPU a node
  process burns per round (all threads, ZeroMQ's I/O thread and the bookkeeping included), the part
  that is not local training: snapshot, encode, send, receive, validate, mix, record.
- **wall share**: 1 - (the node's own training time / the round's wall time). With 8 processes on 2
  cores a node waits for the CPU while its neighbours train, so this counts time-sharing as overhead;
  it is shown because it is what a round looks like from one node.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit import PHASES, median_figures, ring_workload, run_measured  # noqa: E402

SIZES = {"10k": (64, (128,), 200), "1M": (1000, (1000,), 80), "10M": (1000, (10000,), 25)}  # features, hidden, rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--only", choices=sorted(SIZES), action="append")
    args = p.parse_args()
    names = args.only or list(SIZES)
    runs: dict[str, list] = {n: [] for n in names}
    for rep in range(args.repeat):
        for name in names:
            features, hidden, rounds = SIZES[name]
            fig = run_measured(name, ring_workload(args.nodes, rounds, features, hidden, **{"data.train_samples": 2000, "data.test_samples": 200}))
            runs[name].append(fig)
            print(f"  repeat {rep + 1}/{args.repeat} {name}: {fig.round_ms:.1f} ms/round, CPU share {fig.overhead_cpu:.1%}", file=sys.stderr, flush=True)
    print(f"\n{args.nodes}-node ring, 1 SGD step of batch 32 per round; median of {args.repeat} interleaved runs\n")
    print("| params | round ms (wall) | train ms | " + " | ".join(p.removesuffix("_s") for p in PHASES[1:])
          + " ms | CPU/round ms | train CPU ms | overhead, CPU share | overhead, wall share |")
    print("|---|---|---|" + "---|" * (len(PHASES) - 1) + "---|---|---|---|")
    for name in names:
        f = median_figures(runs[name])
        print(f"| {f.params:,} | {f.round_ms:.1f} | {f.phases_ms['train_s']:.2f} | " + " | ".join(f"{f.phases_ms[p]:.2f}" for p in PHASES[1:])
              + f" | {f.cpu_ms:.2f} | {f.train_cpu_ms:.2f} | {f.overhead_cpu:.1%} | {f.overhead_wall:.1%} |")


if __name__ == "__main__":
    main()
