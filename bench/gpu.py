"""Node processes sharing one CUDA GPU: time per round and where it goes, against the same models trained alone.

    .venv/bin/python bench/gpu.py [--nodes 2,4,8,16] [--rounds 30] [--local-steps 5] [--batch-size 64] [--gpu 0]

Workload: N ``gossip node`` processes on a ring (a pair for N = 2), all on one GPU (``gossip launch --gpus 0``), each
training gossip's ``cnn`` on CIFAR-sized synthetic data (32×32×3 images, 10 classes, written once as CIFAR-10
batches) with ``--local-steps`` SGD steps of ``--batch-size`` per round, then D-SGD mixing. From the nodes' own
records (steady state: the first rounds and the evaluating last one skipped), per round:

- compute: the local steps (``train_s``; each step ends by reading its loss, so the GPU work is inside it);
- D2H: the model's one copy to the pinned send buffer, and the header (``encode_s``);
- send, wait: handing the frames to ZeroMQ, waiting for the neighbours' models;
- H2D: the received models' copies to the GPU (``h2d_s``); aggregate: the mix less those copies;

images/s of the whole network (N × steps × batch / round time), the peak GPU memory of each node, and the
ceiling: the same N models trained one after another in this one process, no communication, no other process —
the most the GPU gives this workload; the ratio is the network's images/s over the ceiling's.

A node needs a neighbour, so the smallest network is 2 nodes; the 1-model ceiling is printed as N = 1.
Without a CUDA GPU the bench refuses in one line (exit 2): there is nothing to measure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gossip.config import load_config  # noqa: E402
from gossip.learn.flat import flatten_  # noqa: E402
from gossip.learn.models import build_model  # noqa: E402
from gossip.learn.trainer import LocalTrainer  # noqa: E402
from gossip.run.gpus import gpu_inventory  # noqa: E402

PHASES = {"compute": ("train_s",), "D2H": ("encode_s",), "send": ("send_s",), "wait": ("wait_s",), "H2D": ("h2d_s",)}
SAMPLES_PER_NODE = 1000
TEST_SAMPLES = 1000


def write_synthetic_cifar(root: Path, train: int, test: int, seed: int = 0) -> None:
    """CIFAR-10-format batches of learnable noise: each class a fixed random image plus per-sample noise."""
    from tests.cifar_fixtures import write_cifar_batch  # the repository's one pickle writer

    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(10, 3072))
    root.mkdir(parents=True, exist_ok=True)
    sizes = [train // 5] * 4 + [train - 4 * (train // 5), test]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, size in zip(names, sizes, strict=True):
        labels = rng.integers(0, 10, size=size)
        data = (patterns[labels] + rng.integers(0, 256, size=(size, 3072))) // 2
        write_cifar_batch(root / name, data.astype(np.uint8), labels)


def phase_means(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean seconds per round of each phase, and of the whole round, over steady-state records."""
    out = {name: statistics.fmean(sum(r.get(k) or 0.0 for k in keys) for r in records) for name, keys in PHASES.items()}
    out["aggregate"] = statistics.fmean(r["aggregate_s"] - (r.get("h2d_s") or 0.0) for r in records)
    out["round"] = statistics.fmean(r["round_s"] for r in records)
    return out


def steady(records: Sequence[dict[str, Any]], warmup: int) -> list[dict[str, Any]]:
    """The records past the warm-up rounds, without the last (it evaluates and writes the final files)."""
    return list(records[warmup:-1]) or list(records)


def run_network(nodes: int, args: argparse.Namespace, data_root: Path, out: Path) -> dict[str, Any]:
    """One ``gossip launch`` of ``nodes`` processes on GPU ``args.gpu``; its figures from the run directory."""
    run_dir = out / f"n{nodes}"
    cmd = [
        sys.executable, "-m", "gossip", "launch", "-n", str(nodes), "-t", "ring" if nodes > 2 else "complete",
        "-r", str(args.rounds), "--local-steps", str(args.local_steps), "--batch-size", str(args.batch_size),
        "--dataset", "cifar10", "--data-root", str(data_root), "--model", "cnn", "--gpus", str(args.gpu),
        "--set", f"training.eval_every={args.rounds}", "--set", "metrics.enabled=false",
        "--run-dir", str(run_dir), "--no-progress", "--no-report",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"gpu.py: error: the {nodes}-node run failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    per_node = []
    for i in range(nodes):
        lines = (run_dir / "nodes" / f"node-{i}.jsonl").read_text().splitlines()
        per_node.append(phase_means(steady([json.loads(line) for line in lines], args.warmup)))
        summary = json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())
        per_node[-1]["gpu_peak_mib"] = summary.get("gpu_memory_peak_bytes", 0) / 2**20
    figures = {key: statistics.median(n[key] for n in per_node) for key in per_node[0]}
    figures["images_s"] = nodes * args.local_steps * args.batch_size / figures["round"]
    return figures


def ceiling(nodes: int, rounds: int, local_steps: int, batch_size: int, device: torch.device) -> float:
    """Images/s of ``nodes`` models trained one after another in this process, no communication: the GPU's best."""
    cfg = load_config(env={}, overrides={"training.lr": 0.05}).training
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES_PER_NODE, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=SAMPLES_PER_NODE).astype(np.int64)
    trainers = []
    for i in range(nodes):
        torch.manual_seed(i)
        flat = flatten_(build_model("cnn", (3, 32, 32), 10), device=device)
        trainers.append(LocalTrainer(flat.module, x, y, x[:10], y[:10], cfg, batch_size, seed=i, device=device))
    for t in trainers:  # warm-up: kernels chosen, memory allocated
        t.steps(1)
    start = time.perf_counter()
    for _ in range(rounds):
        for t in trainers:
            t.steps(local_steps)
    return nodes * rounds * local_steps * batch_size / (time.perf_counter() - start)


def table(rows: Sequence[tuple[int, dict[str, Any] | None, float]]) -> str:
    """The printed result: one line per N."""
    head = "| N | ms/round | compute | D2H | send | wait | H2D | aggregate | images/s | ceiling images/s | ratio | GPU MiB/node |"
    lines = [head, "|" + "---:|" * 12]
    for n, f, top in rows:
        if f is None:
            lines.append(f"| {n} | - | - | - | - | - | - | - | - | {top:,.0f} | - | - |")
            continue
        ms = [f"{1000 * f[k]:.2f}" for k in ("round", "compute", "D2H", "send", "wait", "H2D", "aggregate")]
        lines.append(
            f"| {n} | {' | '.join(ms)} | {f['images_s']:,.0f} | {top:,.0f} | {f['images_s'] / top:.2f} | {f['gpu_peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2,4,8,16", help="network sizes, comma-separated (each >= 2)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="rounds left out of the figures")
    p.add_argument("--local-steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--gpu", type=int, default=0, help="the GPU every node runs on")
    args = p.parse_args(argv)
    gpus = gpu_inventory()  # in a subprocess: this process must not initialise CUDA before its launches fork
    if not any(g.index == args.gpu for g in gpus):
        print(
            f"gpu.py: error: no CUDA GPU {args.gpu} on this machine (torch sees {len(gpus)}); this bench measures GPU nodes",
            file=sys.stderr,
        )
        return 2
    sizes = [int(v) for v in args.nodes.split(",")]
    print(f"# {gpus[args.gpu].name}: cnn on 32x32x3, {args.local_steps} steps x batch {args.batch_size} per round, {args.rounds} rounds")
    rows: list[tuple[int, dict[str, Any] | None, float]] = []
    with tempfile.TemporaryDirectory(prefix="gossip-gpu-bench-") as tmp:
        data = Path(tmp) / "cifar"
        write_synthetic_cifar(data, SAMPLES_PER_NODE * max(sizes), TEST_SAMPLES)
        networks = {n: run_network(n, args, data, Path(tmp)) for n in sizes}  # before this process touches CUDA
        device = torch.device("cuda", args.gpu)
        rows.append((1, None, ceiling(1, args.rounds, args.local_steps, args.batch_size, device)))
        for n in sizes:
            rows.append((n, networks[n], ceiling(n, args.rounds, args.local_steps, args.batch_size, device)))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
