"""Starting a run: nodes forked from one warm fork server (the default) against one fresh interpreter per node.

    .venv/bin/python bench/startup.py [--nodes 4 8 16 32] [--repeat 2] [--rounds 20] [--dataset mnist1d]

Each trial is the real command, ``gossip launch`` (a new process each time, so every forked trial pays
for its own fork server), on a ring of N nodes with the default MLP on MNIST-1D (or ``--dataset``); the two ways alternate
trial by trial. Per way, medians over the trials:

- start-up: from the command's start to the moment the last node began its first round (a node's first
  record's time minus its round time) — the launcher's preparation plus every node's start;
- wall: the whole command, to its exit;
- PSS per node: the proportional set size of a node process (``/proc/PID/smaps_rollup``), which counts a
  page shared by k processes as 1/k of it in each — the memory a node really adds; sampled while the
  run trains, the median over nodes of each one's largest sample. RSS counts shared pages in every
  process, so it hardly differs between the two ways.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfkit import RssSampler, pss

from gossip.results.rundir import records_by_node

WAYS = ("fork", "spawn")


def trial(way: str, nodes: int, rounds: int, tmp: Path, dataset: str = "mnist1d") -> tuple[float, float, float]:
    """(start-up s, wall s, PSS MiB per node) of one ``gossip launch``."""
    run_dir = tmp / f"{way}-{nodes}-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "gossip",
        "launch",
        "-n",
        str(nodes),
        "-t",
        "ring",
        "-r",
        str(rounds),
        "--dataset",
        dataset,
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "--set",
        "training.eval_every=1000000",
        "--set",
        "transport.startup_timeout_s=600",
    ]
    cmd += ["--spawn"] if way == "spawn" else []
    t0 = time.time()
    with RssSampler(str(run_dir), period_s=0.25, measure=pss) as sampler:
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(f"{way} N={nodes}: gossip launch failed ({done.returncode}):\n{done.stderr[-2000:]}")
    first_rounds = [records[0]["time"] - records[0]["round_s"] for _node, records in records_by_node(run_dir)]
    pss_mib = statistics.median(sampler.peak.values()) / 2**20 if sampler.peak else float("nan")
    return max(first_rounds) - t0, wall, pss_mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--dataset", default="mnist1d", help="a shipped dataset (digits: the one most tests use)")
    args = p.parse_args()
    figures: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="gossip-startup-") as tmp:
        for n in args.nodes:
            for k in range(args.repeat):
                for way in WAYS if k % 2 == 0 else WAYS[::-1]:
                    figures.setdefault((way, n), []).append(trial(way, n, args.rounds, Path(tmp), args.dataset))
                    s, w, m = figures[(way, n)][-1]
                    print(f"  N={n} {way}: start-up {s:.1f} s, wall {w:.1f} s, PSS {m:.0f} MiB/node", file=sys.stderr, flush=True)
    print(
        f"\n`gossip launch` of an N-node ring, {args.rounds} rounds of the default MLP on {args.dataset}; median of {args.repeat} trials per way, alternating; 2 cores\n"
    )
    print("| nodes | start-up s: fork | spawn | fork / spawn | wall s: fork | spawn | fork / spawn | PSS MiB/node: fork | spawn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.nodes:
        f = [statistics.median(x) for x in zip(*figures[("fork", n)], strict=True)]
        s = [statistics.median(x) for x in zip(*figures[("spawn", n)], strict=True)]
        print(
            f"| {n} | {f[0]:.1f} | {s[0]:.1f} | {f[0] / s[0]:.2f} | {f[1]:.1f} | {s[1]:.1f} | {f[1] / s[1]:.2f} | {f[2]:.0f} | {s[2]:.0f} |"
        )


if __name__ == "__main__":
    main()
