"""Two aggregation rules × three seeds under one sign-flip attacker, through the Python API, as a table.

    python examples/sweep.py                       # 6 launches of 5 node processes each, 10 rounds
    python examples/sweep.py --out-dir runs/sweep  # where the 6 run directories go (must not hold them yet)
    python examples/sweep.py --rounds 3            # a quicker look

Each run gets a directory named for what varies (``dsgd-s0``, ``median-s1``, ...); its ``config.toml`` records
the rest. A run that fails (a diverged model) is a row that says so; the sweep goes on. Ctrl-C stops the sweep.
"""

from __future__ import annotations

import argparse
import sys
import time

import gossip

RULES = ("dsgd", "median")
SEEDS = (0, 1, 2)
BASE = {
    "run.nodes": 5,
    "topology.spec": "complete",
    "metrics.enabled": False,
    "byzantine.nodes": [4],
    "byzantine.attack": "sign-flip",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}", help="parent of the run directories")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per run (default 10)")
    args = parser.parse_args(argv)
    base = gossip.configure(gossip.RunConfig(), {**BASE, "run.out_dir": args.out_dir, "training.rounds": args.rounds})
    print(f"{'rule':<8} {'seed':>4} {'honest accuracy':>15}  run directory")
    for rule in RULES:
        for seed in SEEDS:
            cfg = gossip.configure(base, {"aggregation.rule": rule, "run.seed": seed})
            result = gossip.experiment(cfg, name=f"{rule}-s{seed}", progress=False)
            accuracy = f"{result.accuracy_mean:.3f}" if result.ok and result.accuracy_mean is not None else f"exit {result.exit_code}"
            print(f"{rule:<8} {seed:>4} {accuracy:>15}  {result.run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
