"""Decentralised vs centralised accuracy on MNIST-1D: a 16-node ring against one process, same epochs.

    .venv/bin/python bench/accuracy.py [--nodes 16] [--rounds 500] [--model mlp]

Prints a table (one row per model) and writes bench/out/accuracy-<model>.png with both curves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import load_config
from gossip.data import load_dataset
from gossip.results.rundir import records_by_node
from gossip.run.central import train_centrally
from gossip.run.launch import launch

OUT = Path(__file__).resolve().parent / "out"


def run(model: str, nodes: int, rounds: int, lr: float, topology: str) -> dict:
    overrides = {
        "run.nodes": nodes,
        "topology.spec": topology,
        "training.rounds": rounds,
        "model.name": model,
        "training.lr": lr,
        "training.momentum": 0.9,
        "data.batch_size": 25,
        "training.eval_every": max(1, rounds // 25),
    }
    cfg = load_config(env={}, overrides=overrides)
    tmp = Path(tempfile.mkdtemp(prefix="gossip-bench-"))
    t0 = time.perf_counter()
    result = launch(cfg, run_dir=tmp / "run", progress=False, out=open("/dev/null", "w"))
    wall = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"launch failed ({result.exit_code}); see {tmp}")
    per_round: dict[int, list[float]] = {}
    for _node, records in records_by_node(result.run_dir):
        for r in records:
            if r["accuracy"] is not None:
                per_round.setdefault(r["round"] + 1, []).append(r["accuracy"])
    dec_curve = sorted((k, statistics.mean(v)) for k, v in per_round.items())
    t1 = time.perf_counter()
    central = train_centrally(
        cfg, load_dataset(cfg.data.dataset, seed=cfg.run.seed, **cfg.data.dataset_options()), nodes, eval_every=max(1, rounds // 25)
    )
    central_wall = time.perf_counter() - t1
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "model": model,
        "nodes": nodes,
        "topology": topology,
        "rounds": rounds,
        "epochs": central.epochs,
        "decentralised_mean": result.summary["accuracy_mean"],
        "decentralised_std": result.summary["accuracy_std"],
        "central": central.final.accuracy,
        "wall_s": wall,
        "central_wall_s": central_wall,
        "dec_curve": dec_curve,
        "central_curve": list(central.curve),
    }


def plot(row: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(*zip(*row["dec_curve"], strict=True), label=f"{row['nodes']}-node {row['topology']}, mean of nodes")
    ax.plot(*zip(*row["central_curve"], strict=True), label="centralised, batch × nodes", linestyle="--")
    ax.set_xlabel("round (= central step)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"MNIST-1D, {row['model']}, {row['epochs']:.0f} epochs")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--rounds", type=int, default=500)
    p.add_argument("--topology", default="ring")
    p.add_argument("--model", action="append", help="mlp and/or cnn1d (default: both)")
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()
    OUT.mkdir(exist_ok=True)
    rows = [run(m, args.nodes, args.rounds, args.lr, args.topology) for m in (args.model or ["mlp", "cnn1d"])]
    print(
        f"{'model':<7} {'nodes':>5} {'topology':<9} {'epochs':>6} {'decentralised (mean ± std)':>27} {'central':>8} {'gap':>7} {'wall s':>7}"
    )
    for r in rows:
        gap = r["central"] - r["decentralised_mean"]
        print(
            f"{r['model']:<7} {r['nodes']:>5} {r['topology']:<9} {r['epochs']:>6.0f} {r['decentralised_mean']:>19.4f} ± {r['decentralised_std']:.4f} {r['central']:>8.4f} {gap:>+7.4f} {r['wall_s']:>7.1f}"
        )
        plot(r, OUT / f"accuracy-{r['model']}.png")
    (OUT / "accuracy.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
