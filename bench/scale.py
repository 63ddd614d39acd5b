"""Scale on this machine: rounds per second, wall time to a target accuracy and memory per node, N = 4 … 64.

    .venv/bin/python bench/scale.py [--nodes 4 8 16 32 64] [--rounds 100] [--target 0.8]

N node processes on a ring (weights 1/3), the 64-200-10 MLP on the synthetic set (8000 samples split
IID), one SGD step of batch 32 with momentum 0.9 per round, evaluation every 2 rounds. Each N is one
short run. Rounds/s is the steady state (warm-up skipped); time to target is from the start of the
first round to the first evaluation at which the mean accuracy over nodes reaches ``--target``
(process start-up is reported apart: with nodes forked from the fork server it hardly grows with N). RSS is the median over nodes of each node
process's peak VmRSS, and its excess over a bare ``python -c "import torch"``.

Oversubscription: 64 processes share 2 cores. Each node runs one compute thread
(``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1`` set by the launcher) plus ZeroMQ's one I/O
thread, so the cores are time-shared by N processes rather than by N × cores threads spinning in
OpenMP barriers; throughput then falls as 1/N, not faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfkit import bare_torch_rss, ring_workload, run_measured

from gossip.results.rundir import records_by_node


def time_to_target(run_dir: Path, target: float) -> tuple[float | None, int | None, float]:
    """(seconds from the start of round 0 to the first evaluation with mean accuracy >= target, that round, start-up s)."""
    by_round: dict[int, list[float]] = {}
    ends: dict[int, list[float]] = {}
    starts = []
    for _node, records in records_by_node(run_dir):
        starts.append(records[0]["time"] - records[0]["round_s"])
        for r in records:
            if r["accuracy"] is not None:
                by_round.setdefault(r["round"], []).append(r["accuracy"])
                ends.setdefault(r["round"], []).append(r["time"])
    t0 = min(starts)
    for rnd in sorted(by_round):
        if statistics.mean(by_round[rnd]) >= target:
            return max(ends[rnd]) - t0, rnd + 1, t0
    return None, None, t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--target", type=float, default=0.9)
    args = p.parse_args()
    bare_mib = bare_torch_rss() / 2**20
    rows = []
    for n in args.nodes:
        overrides = ring_workload(
            n,
            args.rounds,
            64,
            (200,),
            **{
                "training.momentum": 0.9,
                "training.eval_every": 2,
                "data.train_samples": 8000,
                "data.test_samples": 1000,
                "transport.round_timeout_s": 120.0,
                "transport.startup_timeout_s": 600.0,
            },
        )
        fig = run_measured(f"N={n}", overrides, keep=True)
        run_dir = Path(fig.summary["run_dir"])
        seconds, rounds, t0 = time_to_target(run_dir, args.target)
        launched = Path(run_dir / "config.toml").stat().st_mtime
        rows.append((n, fig, seconds, rounds, t0 - launched))
        print(f"  N={n}: {1e3 / fig.round_ms:.1f} rounds/s, RSS {fig.rss_mib:.0f} MiB", file=sys.stderr, flush=True)
        import shutil

        shutil.rmtree(run_dir.parent, ignore_errors=True)
    print(f"\nring, 64-200-10 MLP, synthetic data, 1 SGD step of batch 32 per round; bare torch {bare_mib:.0f} MiB; 2 cores\n")
    print(
        f"| nodes | rounds/s | ms/round | node-rounds/s | time to {args.target:.0%} s (round) | final accuracy | start-up s | CPU/round/node ms | RSS MiB/node | above bare torch | total RSS GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, f, seconds, rounds, startup in rows:
        reach = f"{seconds:.1f} ({rounds})" if seconds is not None else f"not in {args.rounds} rounds"
        print(
            f"| {n} | {1e3 / f.round_ms:.1f} | {f.round_ms:.1f} | {n * 1e3 / f.round_ms:.0f} | {reach} | {f.accuracy:.3f} | {startup:.1f} "
            f"| {f.cpu_ms:.2f} | {f.rss_mib:.0f} | {f.rss_mib - bare_mib:+.0f} | {n * f.rss_mib / 1024:.1f} |"
        )


if __name__ == "__main__":
    main()
