"""Vanishing variance (Tian et al. 2024) on real processes: plain averaging vs variance-corrected vs server.

    .venv/bin/python bench/vanishing_variance.py [--nodes 16] [--degree 4] [--rounds 300] [--target 0.5]

Independent initialisation on every node (the paper's setting), a random d-regular graph, IID MNIST-1D,
the MLP. Arms, all with the same optimiser and data:

  (a) plain      D-SGD with uniform weights 1/(d+1) on the regular graph
  (b) corrected  the same weights, then the per-layer variance correction (self_weight = mixing, FollowOthers)
  (b') paper VC  the paper's conservative average (beta = 0.5) with the correction
  (c) server     complete graph, uniform weights, one shared initialisation: the exact average every
                 round from one starting model — what a server (FedAvg, parallel SGD) does
  (c') exact avg complete graph, uniform weights, independent init: the exact average of 16 uncorrelated
                 models in round 1, then as (c) — shows that the average itself, not the graph, loses the variance

Prints rounds to reach ``--target`` mean accuracy, the accuracy at 1/4, 1/2 and the end, and the first
layer's variance after round 1 relative to Xavier; writes bench/out/vanishing_variance.png (accuracy)
and bench/out/vanishing_variance_layer.png (first-layer weight variance after mixing).
"""

from __future__ import annotations

import argparse
import json

from runkit import OUT, plot, rounds_to, run_arm


def accuracy_at(curve: list[tuple[int, float]], round_: int) -> float:
    """The mean accuracy at the last evaluation at or before ``round_``."""
    seen = [acc for k, acc in curve if k <= round_]
    return seen[-1] if seen else float("nan")


def xavier_variance(model: str) -> float:
    """Variance of Xavier-uniform init for the model's first weight tensor: 2 / (fan_in + fan_out)."""
    import torch

    from gossip.learn.flat import flatten_
    from gossip.learn.models import build_model

    spec = flatten_(build_model(model, (40,), 10)).layout.of_kind("weight")[0]
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(spec.shape))
    return 2.0 / (fan_in + fan_out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--degree", type=int, default=4)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="mlp")
    args = p.parse_args()

    common = {
        "run.nodes": args.nodes,
        "run.seed": args.seed,
        "training.rounds": args.rounds,
        "model.name": args.model,
        "model.init": "independent",
        "training.lr": args.lr,
        "training.momentum": args.momentum,
        "data.batch_size": args.batch_size,
        "training.eval_every": max(1, args.rounds // 60),
        "metrics.enabled": False,
        "transport.round_timeout_s": 60.0,
    }
    regular = {"topology.spec": f"regular:d={args.degree}", "topology.weights": "uniform"}
    arms = [
        ("(a) plain averaging", {**common, **regular}),
        ("(b) variance-corrected", {**common, **regular, "aggregation.rule": "variance", "variance.self_weight": "mixing"}),
        ("(b') paper VC, beta 0.5", {**common, **regular, "aggregation.rule": "variance", "variance.self_weight": "beta"}),
        (
            "(c) server: exact avg, shared init",
            {**common, "topology.spec": "complete", "topology.weights": "uniform", "model.init": "shared"},
        ),
        ("(c') exact avg, independent init", {**common, "topology.spec": "complete", "topology.weights": "uniform"}),
    ]
    rows = []
    for name, overrides in arms:
        row = run_arm(name, overrides)
        rows.append(row)
        print(f"  done {name}: {row['wall_s']:.0f} s", flush=True)

    xavier = xavier_variance(args.model)
    print(
        f"\n{args.nodes} nodes, regular d={args.degree}, MNIST-1D IID, {args.model}, independent init, {args.rounds} rounds, "
        f"SGD lr {args.lr} momentum {args.momentum}, batch {args.batch_size}"
    )
    quarter, half = args.rounds // 4, args.rounds // 2
    print(
        f"| arm | rounds to {args.target:.2f} | acc @ {quarter} | acc @ {half} | final acc | layer-1 var after round 1 / Xavier | MB sent per node | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        reach = rounds_to(r["curve"], args.target)
        ratio = r["variance"][0][1] / xavier if r["variance"] else float("nan")
        print(
            f"| {r['name']} | {reach if reach is not None else 'never'} | {accuracy_at(r['curve'], quarter):.4f} | "
            f"{accuracy_at(r['curve'], half):.4f} | {r['summary']['accuracy_mean']:.4f} | {ratio:.3f} | "
            f"{r['mb_sent_per_node']:.1f} | {r['wall_s']:.0f} |"
        )
    plot(
        {r["name"]: r["curve"] for r in rows},
        OUT / "vanishing_variance.png",
        title=f"MNIST-1D, {args.nodes} nodes, independent init",
        ylabel="mean test accuracy of the nodes",
        hline=args.target,
    )
    plot(
        {r["name"]: r["variance"] for r in rows},
        OUT / "vanishing_variance_layer.png",
        title="first layer: element variance after mixing (mean over nodes)",
        ylabel="variance",
        logy=True,
    )
    (OUT / "vanishing_variance.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
