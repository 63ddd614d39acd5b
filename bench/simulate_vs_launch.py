"""``gossip simulate`` against ``gossip launch`` on one config: the same accuracy curve, and the wall-time ratio.

    .venv/bin/python bench/simulate_vs_launch.py [--nodes 8] [--rounds 200] [--repeat 2]

The simulation runs all N models in one process (vmapped local steps, then X ← W X); the launch runs
N node processes exchanging models over ZeroMQ. Same seed, same shards, same batches, same
initialisation, so the curves should agree up to float rounding in the mix. Runs interleaved
``--repeat`` times; the wall-time figures are medians (the launch's includes process start-up, shown
apart). MNIST-1D, MLP 40-100-100-10, ring with Metropolis weights, SGD lr 0.05 momentum 0.9, batch 32.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import load_config
from gossip.results.rundir import records_by_node
from gossip.run.launch import launch
from gossip.run.simulate import simulate


def curve(run_dir: Path) -> dict[int, float]:
    """Mean accuracy over nodes at each evaluated round."""
    acc: dict[int, list[float]] = {}
    for _node, records in records_by_node(run_dir):
        for r in records:
            if r["accuracy"] is not None:
                acc.setdefault(r["round"] + 1, []).append(r["accuracy"])
    return {k: statistics.mean(v) for k, v in sorted(acc.items())}


def first_round_start(run_dir: Path) -> float:
    return min(records[0]["time"] - records[0]["round_s"] for _n, records in records_by_node(run_dir))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": args.nodes,
            "topology.spec": "ring",
            "training.rounds": args.rounds,
            "training.momentum": 0.9,
            "training.lr": 0.05,
            "data.batch_size": 32,
            "training.eval_every": max(1, args.rounds // 10),
            "metrics.enabled": False,
        },
    )
    walls: dict[str, list[float]] = {"launch": [], "launch, rounds only": [], "simulate": []}
    curves: dict[str, dict[int, float]] = {}
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="gossip-simlaunch-"))
        t0 = time.perf_counter()
        result = launch(cfg, run_dir=tmp / "launch", progress=False, out=io.StringIO())
        wall = time.perf_counter() - t0
        if result.exit_code != 0:
            raise SystemExit(f"launch failed; see {tmp}")
        last = max(records[-1]["time"] for _n, records in records_by_node(tmp / "launch"))
        walls["launch"].append(wall)
        walls["launch, rounds only"].append(last - first_round_start(tmp / "launch"))
        curves["launch"] = curve(tmp / "launch")
        t0 = time.perf_counter()
        simulate(cfg, run_dir=tmp / "simulate")
        walls["simulate"].append(time.perf_counter() - t0)
        curves["simulate"] = curve(tmp / "simulate")
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    diffs = [abs(curves["launch"][k] - curves["simulate"][k]) for k in curves["launch"]]
    print(f"\n{args.nodes}-node ring, MNIST-1D, MLP, {args.rounds} rounds; median of {args.repeat} interleaved runs\n")
    print("| round | launch: mean accuracy | simulate: mean accuracy | difference |")
    print("|---|---|---|---|")
    for k in curves["launch"]:
        print(f"| {k} | {curves['launch'][k]:.4f} | {curves['simulate'][k]:.4f} | {curves['launch'][k] - curves['simulate'][k]:+.4f} |")
    print(f"\nlargest difference {max(diffs):.4f}\n")
    print("| | wall s | launch / simulate |")
    print("|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} | {v / med['simulate']:.2f} |")


if __name__ == "__main__":
    main()
