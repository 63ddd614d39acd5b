"""The single global merge (Zhu et al. 2025) on real processes: sparse gossip, then one exact average.

    .venv/bin/python bench/single_merge.py [--nodes 16] [--rounds 200] [--local-steps 5] [--alpha 0.1]

Highly non-IID MNIST-1D (Dirichlet alpha = 0.1 per class), the MLP, shared initialisation (the paper's
default), the complete graph, and every arm ends with the global merge:

  sparse p=0.2      each round a node pulls one random node with probability 0.2 (the paper's setting)
  server            every round the exact average (complete graph, uniform weights): the server-based reference
  zero-comm         no communication at all until the merge: local training, then one average
  early window      dense (exact average) in the first 10 % of the rounds, sparse p=0.2 elsewhere
  late window       dense in [0.8, 0.9) of the rounds, sparse p=0.2 elsewhere (late, but not the last
                    rounds: a dense window that ends the run would itself be the merge)

Prints the mean accuracy of the local models before the merge, the merged model's accuracy, and the
traffic; writes bench/out/single_merge.png (mean local accuracy per round, merged accuracy as a marker).
The paper's claims: merged ≈ server, local ≈ local training, zero-comm merged ≈ chance, late > early.
"""

from __future__ import annotations

import argparse
import json

from runkit import OUT, plot, run_arm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--local-steps", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--probability", type=float, default=0.2)
    p.add_argument("--window", type=float, default=0.1, help="width of the dense window, as a fraction of the rounds")
    p.add_argument("--model", default="mlp")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    common = {
        "run.nodes": args.nodes,
        "run.seed": args.seed,
        "topology.spec": "complete",
        "topology.weights": "uniform",
        "data.partition": "dirichlet",
        "data.alpha": args.alpha,
        "model.name": args.model,
        "training.rounds": args.rounds,
        "training.local_steps": args.local_steps,
        "training.lr": args.lr,
        "training.momentum": args.momentum,
        "data.batch_size": args.batch_size,
        "training.eval_every": max(1, args.rounds // 40),
        "merge.enabled": True,
        "metrics.enabled": False,
        "transport.round_timeout_s": 60.0,
        "merge.timeout_s": 120.0,
    }
    sparse = {"schedule.probability": args.probability}
    w = args.window
    arms = [
        (f"sparse p={args.probability}", {**common, **sparse, "schedule.mode": "random"}),
        ("server (exact average each round)", {**common, "schedule.mode": "every"}),
        ("zero-comm (local training)", {**common, "schedule.mode": "none"}),
        (
            f"early window [0, {w:g}) + sparse",
            {
                **common,
                **sparse,
                "schedule.mode": "window",
                "schedule.window_start": 0.0,
                "schedule.window_end": w,
                "schedule.outside": "random",
            },
        ),
        (
            f"late window [{1 - 2 * w:g}, {1 - w:g}) + sparse",
            {
                **common,
                **sparse,
                "schedule.mode": "window",
                "schedule.window_start": 1 - 2 * w,
                "schedule.window_end": 1 - w,
                "schedule.outside": "random",
            },
        ),
    ]
    rows = []
    for name, overrides in arms:
        row = run_arm(name, overrides)
        rows.append(row)
        print(f"  done {name}: {row['wall_s']:.0f} s", flush=True)

    print(
        f"\n{args.nodes} nodes, complete graph, MNIST-1D Dirichlet alpha={args.alpha}, {args.model}, shared init, "
        f"{args.rounds} rounds × {args.local_steps} local steps, SGD lr {args.lr} momentum {args.momentum}, batch {args.batch_size}"
    )
    print(
        "| arm | mean local accuracy before merge (± std) | merged model accuracy | gain | merged models identical | MB sent per node | wall s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["summary"]
        before, merged = s["accuracy_before_merge_mean"], s["merged_accuracy"]
        spread = _std([n["accuracy_before_merge"] for n in s["per_node"] if n["accuracy_before_merge"] is not None])
        print(
            f"| {r['name']} | {before:.4f} ± {spread:.4f} | {merged:.4f} | {merged - before:+.4f} | {s['merge_agreed']} | "
            f"{r['mb_sent_per_node']:.2f} | {r['wall_s']:.0f} |"
        )
    series = {}
    for r in rows:
        series[f"{r['name']}: local models"] = r["curve"]
    plot(
        series,
        OUT / "single_merge.png",
        title=f"MNIST-1D Dirichlet {args.alpha}, {args.nodes} nodes (× = merged model)",
        ylabel="mean test accuracy of the local models",
    )
    _mark_merged(rows, OUT / "single_merge.png", args)
    (OUT / "single_merge.json").write_text(json.dumps(rows, indent=1, default=str))


def _std(values: list[float]) -> float:
    if not values:
        return float("nan")
    m = sum(values) / len(values)
    return (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def _mark_merged(rows: list[dict], path, args) -> None:  # type: ignore[no-untyped-def]
    """Redraw with each arm's merged accuracy as a cross at the last round, in the arm's colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in rows:
        (line,) = ax.plot(*zip(*r["curve"], strict=True), label=r["name"])
        ax.plot([args.rounds], [r["summary"]["merged_accuracy"]], marker="x", markersize=10, color=line.get_color())
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (line: mean of local models; ×: merged model)")
    ax.set_title(f"MNIST-1D, Dirichlet alpha={args.alpha}, {args.nodes} nodes, one global merge at the end")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
