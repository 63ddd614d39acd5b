"""Bytes on the wire against accuracy: the wire dtypes gossip already validates (float32, float16, bfloat16).

    .venv/bin/python bench/compression.py [--nodes 8] [--rounds 200]

Each arm is a real run (N node processes) of the same config with ``[transport] wire_dtype`` set;
the model stays float32 on every node and only the payload on the wire is narrowed (the receiver
widens it back to float32 after validating it). MNIST-1D, MLP, ring, SGD lr 0.05 momentum 0.9.
int8 and top-k with error feedback are not implemented.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runkit import run_arm  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    base = {
        "run.nodes": args.nodes, "topology.spec": "ring", "training.rounds": args.rounds, "training.momentum": 0.9,
        "training.lr": 0.05, "training.eval_every": max(1, args.rounds // 10), "metrics.enabled": False,
    }
    rows = [run_arm(dtype, {**base, "transport.wire_dtype": dtype}) for dtype in ("float32", "float16", "bfloat16")]
    ref = rows[0]
    print(f"\n{args.nodes}-node ring, MNIST-1D, MLP, {args.rounds} rounds\n")
    print("| wire dtype | MB sent per node | bytes vs float32 | final mean accuracy | accuracy vs float32 | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        acc = r["summary"]["accuracy_mean"]
        print(f"| {r['name']} | {r['mb_sent_per_node']:.2f} | {r['mb_sent_per_node'] / ref['mb_sent_per_node']:.2f} | {acc:.4f} "
              f"| {acc - ref['summary']['accuracy_mean']:+.4f} | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
