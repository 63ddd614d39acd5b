"""Bytes on the wire against accuracy: narrower wire dtypes, int8 quantisation, and CHOCO-gossip with top-k.

    .venv/bin/python bench/compression.py [--nodes 8] [--rounds 200] [--fractions 0.1,0.05,0.01] [--gammas 0]
                                          [--topk-only]

Each arm is a real run (N node processes) of the same config, MNIST-1D, MLP, ring, SGD lr 0.05
momentum 0.9. The models stay float32 on every node in every arm:

* float32 / float16 / bfloat16 / int8 (``[transport] wire_dtype``): D-SGD, the model is narrowed on
  the wire only (int8: block-wise symmetric, a float32 scale per 1024 values) and widened back to
  float32 by the receiver after validation;
* topk f (``[compression] method = "topk"``, ``topk_fraction = f``): CHOCO-gossip (Koloskova et al.
  2019) — each round a node sends the top f share of x − x̂ (int32 index + float32 value), keeps the
  rest as error feedback, and mixes the public copies x̂ with consensus step γ (``choco_gamma``; the
  default 0 means 4f); every 50 rounds (``resync_every``) it sends x̂ in full. ``--gammas`` runs each
  fraction at several γ (``--topk-only`` skips the wire-dtype arms but the float32 reference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runkit import run_arm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--fractions", default="0.1,0.05,0.01", help="top-k shares for the CHOCO arms")
    p.add_argument("--gammas", default="0", help="consensus steps for the CHOCO arms (0 = the default, 4 × fraction)")
    p.add_argument("--topk-only", action="store_true", help="only float32 (the reference) and the CHOCO arms")
    args = p.parse_args()
    base = {
        "run.nodes": args.nodes,
        "topology.spec": "ring",
        "training.rounds": args.rounds,
        "training.momentum": 0.9,
        "training.lr": 0.05,
        "training.eval_every": max(1, args.rounds // 10),
        "metrics.enabled": False,
    }
    dtypes = ("float32",) if args.topk_only else ("float32", "float16", "bfloat16", "int8")
    arms = [(dtype, {"transport.wire_dtype": dtype}) for dtype in dtypes]
    fractions = [float(f) for f in args.fractions.split(",")]
    gammas = [float(g) for g in args.gammas.split(",")]
    arms += [
        (
            f"topk {f:g}, CHOCO γ = {g or min(1.0, 4 * f):g}",
            {"compression.method": "topk", "compression.topk_fraction": f, "compression.choco_gamma": g},
        )
        for f in fractions
        for g in gammas
    ]
    rows = []
    for name, over in arms:
        rows.append(run_arm(name, {**base, **over}))
        print(f"{name}: {rows[-1]['mb_sent_per_node']:.2f} MB/node, accuracy {rows[-1]['summary']['accuracy_mean']:.4f}", flush=True)
    ref = rows[0]
    print(f"\n{args.nodes}-node ring, MNIST-1D, MLP, {args.rounds} rounds\n")
    print("| arm | MB sent per node | bytes vs float32 | final mean accuracy | accuracy vs float32 | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        acc = r["summary"]["accuracy_mean"]
        print(
            f"| {r['name']} | {r['mb_sent_per_node']:.2f} | {r['mb_sent_per_node'] / ref['mb_sent_per_node']:.3f} | {acc:.4f} "
            f"| {acc - ref['summary']['accuracy_mean']:+.4f} | {r['wall_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
