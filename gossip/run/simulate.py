"""``gossip simulate``: the same D-SGD math as a run of real nodes, vectorised in one process.

Why: it is the simplest baseline a real network has to justify itself against, and a fast research
tool. All N models live in one (N × P) matrix; a round is N local steps done at once with
``torch.func.vmap`` over ``functional_call``, then one mixing step ``X ← W X``. Each node draws the
same batches as its process would (same seeded generator, same permutation walk) from the same shard
and starts from the same initialisation, so the accuracy curve is the one ``gossip launch`` gives —
up to float rounding in the mix (a matrix product here, a difference form over the wire there).

The run directory has the same layout as a launched run (per-node JSONL records, summary), so
``gossip report`` and any analysis script read both. Supported: D-SGD mixing with the topology's
weights, SGD (momentum, weight decay) and Adam, models without BatchNorm (running statistics cannot
be updated under ``vmap``); anything else is refused with one line.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from gossip.config import RunConfig
from gossip.data import Dataset, load_dataset
from gossip.data.datasets import dataset_shape
from gossip.data.split import split_training_set
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.learn.flat import Layout, model_hash
from gossip.learn.models import parameter_count
from gossip.node.plan import NodePlan, build_flat_model
from gossip.results.rundir import RecordWriter, save_vector, write_json
from gossip.run.capacity import check_simulation_fits, dataset_bytes
from gossip.topology.graph import Topology, parse_spec

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation produced."""

    run_dir: Path | None
    accuracy: np.ndarray  # (N,) final test accuracy per node
    curve: tuple[tuple[int, float], ...]  # (round, mean accuracy over nodes)
    wall_s: float


def _check_supported(cfg: RunConfig, layout: Layout) -> None:
    if cfg.aggregation.rule != "dsgd":
        raise ConfigError(f"simulate supports aggregation.rule = 'dsgd' only, not {cfg.aggregation.rule!r}")
    if layout.of_kind("norm", "norm_stat"):
        raise ConfigError(f"simulate supports models without normalisation layers; {cfg.model.name!r} has some")
    if cfg.training.mode != "sync" or cfg.schedule.mode != "every" or cfg.topology.peers != "all" or cfg.merge.enabled:
        raise ConfigError("simulate supports synchronous D-SGD every round only (no schedule, one-peer graph, async mode or merge)")


class _Batches:
    """A node's batch order, drawn exactly as :class:`gossip.learn.trainer.LocalTrainer` draws it."""

    def __init__(self, size: int, batch: int, seed: int) -> None:
        self.size = size
        self.batch = min(batch, max(1, size))
        self._gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.int64)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos + self.batch > len(self._order):
            self._order = torch.randperm(self.size, generator=self._gen)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch]
        self._pos += self.batch
        return idx


def simulate(
    cfg: RunConfig, *, run_dir: str | Path | None = None, dataset: Dataset | None = None, topology: Topology | None = None
) -> SimulationResult:
    """Run ``cfg``'s D-SGD in one process; write per-node records to ``run_dir`` when given."""
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # sized from the config's numbers first: no graph, dataset or model of a mistyped size is built before the check
    if dataset is not None:
        shape, classes, data = dataset.input_shape, dataset.num_classes, 0  # already in memory
    else:
        shape, classes, train, test = dataset_shape(cfg.data.dataset, **cfg.data.dataset_options())
        data = dataset_bytes(shape, train + test)
    params = parameter_count(cfg.model.name, shape, classes, **cfg.model.options())
    check_simulation_fits(topology.n if topology else max(cfg.run.nodes, 1), params, data=data)
    topo = topology or parse_spec(cfg.topology.spec, n=cfg.run.nodes or None, seed=cfg.run.seed)
    check_simulation_fits(topo.n, params, data=data)
    ds = dataset or load_dataset(cfg.data.dataset, root=cfg.data.root or None, seed=cfg.run.seed, **cfg.data.dataset_options())
    parts = split_training_set(cfg, topo.n, ds.y_train)
    batches = [_Batches(len(p), cfg.data.batch_size, cfg.run.seed * 1_000_003 + i + 1) for i, p in enumerate(parts)]
    if len({b.batch for b in batches}) != 1:  # before N models are built: a mistake is refused at once
        raise ConfigError("simulate needs every shard to hold at least one batch (a shard is smaller than data.batch_size)")
    n = topo.n
    flats = [build_flat_model(NodePlan(NodeId(i), cfg, topo, ds, parts[i], None)) for i in range(n)]
    layout = flats[0].layout
    _check_supported(cfg, layout)
    module = flats[0].module
    X = torch.stack([f.vector for f in flats])  # (N, P)
    W = torch.from_numpy(np.asarray(topo.mixing_matrix(cfg.topology.weights), dtype=np.float32))

    x_train = torch.from_numpy(ds.x_train)
    y_train = torch.from_numpy(ds.y_train)
    x_test = torch.from_numpy(ds.x_test)
    y_test = torch.from_numpy(ds.y_test)
    shards = [torch.from_numpy(p) for p in parts]

    def params_of(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s.name: x[s.offset : s.stop].view(s.shape) for s in layout.specs}

    def loss_fn(x: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(module, params_of(x), (xb,)), yb)

    grads = vmap(grad(loss_fn))
    value = vmap(loss_fn)
    logits_of = vmap(lambda x, xb: functional_call(module, params_of(x), (xb,)), in_dims=(0, None))

    tcfg = cfg.training
    momentum = torch.zeros_like(X)
    adam_m = torch.zeros_like(X)
    adam_v = torch.zeros_like(X)
    steps_taken = 0
    writers = [RecordWriter(Path(run_dir) / "nodes" / f"node-{i}.jsonl", truncate=True) for i in range(n)] if run_dir else []
    curve: list[tuple[int, float]] = []
    accuracy = np.zeros(n)
    module.train()
    for t in range(tcfg.rounds):
        t0 = time.perf_counter()
        losses = []
        for _ in range(tcfg.local_steps):
            idx = torch.stack([shards[i][batches[i].next()] for i in range(n)])  # (N, B)
            xb, yb = x_train[idx], y_train[idx]
            with torch.no_grad():
                losses.append(value(X, xb, yb))
            g = grads(X, xb, yb)
            X = _optimiser_step(X, g, tcfg, momentum, adam_m, adam_v, steps_taken)
            steps_taken += 1
        mixed = W @ X
        distance = torch.linalg.vector_norm(X - mixed, dim=1)
        X = mixed
        evaluate = (t + 1) % tcfg.eval_every == 0 or t == tcfg.rounds - 1
        if evaluate:
            with torch.no_grad():
                logits = logits_of(X, x_test)  # (N, T, C)
                accuracy = (logits.argmax(-1) == y_test).float().mean(1).numpy()
                test_loss = torch.stack([F.cross_entropy(lg, y_test) for lg in logits]).numpy()
            curve.append((t + 1, float(accuracy.mean())))
        loss = torch.stack(losses).mean(0).numpy() if losses else np.full(n, math.nan)
        round_s = time.perf_counter() - t0
        for i, w in enumerate(writers):
            w.write(
                {
                    "node": i,
                    "round": t,
                    "time": time.time(),
                    "loss": float(loss[i]),
                    "accuracy": float(accuracy[i]) if evaluate else None,
                    "test_loss": float(test_loss[i]) if evaluate else None,
                    "consensus_distance": float(distance[i]),
                    "arrived": topo.degree(i),
                    "missing": [],
                    "bytes_sent": 0,
                    "bytes_received": 0,
                    "rejected": 0,
                    "round_s": round_s / n,
                }
            )
    for w in writers:
        w.close()
    wall = time.perf_counter() - start
    if run_dir:
        out = Path(run_dir)
        for i in range(n):
            save_vector(out / "nodes" / f"node-{i}.npy", X[i].numpy())
            write_json(
                out / "nodes" / f"node-{i}.json",
                {
                    "node": i,
                    "status": "finished",
                    "rounds_completed": tcfg.rounds,
                    "accuracy": float(accuracy[i]),
                    "model_hash": model_hash(X[i]),
                    "simulated": True,
                },
            )
    return SimulationResult(Path(run_dir) if run_dir else None, accuracy, tuple(curve), wall)


def _optimiser_step(
    X: torch.Tensor, g: torch.Tensor, cfg: Any, momentum: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int
) -> torch.Tensor:
    """torch.optim.SGD / Adam semantics, applied to all N models at once."""
    if cfg.optimizer == "adam":
        if cfg.weight_decay:
            g = g + cfg.weight_decay * X
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        k = step + 1
        denom = (v / (1 - beta2**k)).sqrt_().add_(eps)
        return X - cfg.lr * (m / (1 - beta1**k)) / denom
    if cfg.weight_decay:
        g = g + cfg.weight_decay * X
    if cfg.momentum:
        if step == 0:
            momentum.copy_(g)
        else:
            momentum.mul_(cfg.momentum).add_(g)
        g = momentum
    return X - cfg.lr * g
