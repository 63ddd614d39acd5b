"""``gossip simulate``: the same D-SGD math as a run of real nodes, vectorised in one process.

Why: it is the simplest baseline a real network has to justify itself against, and a fast research
tool. All N models live in one (N × P) matrix; a round is N local steps done at once with
``torch.func.vmap`` over ``functional_call``, then one mixing step ``X ← W X``. Each node draws the
same batches as its process would (the same :class:`~gossip.learn.batches.BatchOrder`) from the same
shard, starts from the same initialisation and takes the same optimiser update
(:func:`~gossip.learn.optim.apply_update_`, on all N rows at once), so the accuracy curve is the one
``gossip launch`` gives — up to float rounding in the mix (a matrix product here, a difference form over
the wire there).

The run directory has the same layout as a launched run (per-node JSONL records, summary), so
``gossip report`` and any analysis script read both. Supported: D-SGD mixing with the topology's
weights, SGD (momentum, weight decay) and Adam, models without BatchNorm (running statistics cannot
be updated under ``vmap``); anything else is refused with one line, as is every setting a launched run honours and
this math would leave out (attackers, compression, a narrow wire type, stragglers, emulated links).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from gossip.config import RunConfig
from gossip.data import Dataset
from gossip.data.datasets import dataset_of, dataset_shape_of
from gossip.data.split import split_training_set
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.learn.batches import BatchOrder
from gossip.learn.flat import Layout, model_hash
from gossip.learn.models import parameter_count_of
from gossip.learn.objectives import Loss, Scorer, build_loss, build_metric, check_objectives
from gossip.learn.optim import UpdateRule, UpdateState, apply_update_
from gossip.learn.trainer import update_rule
from gossip.node.plan import NodePlan, build_flat_model
from gossip.results.rundir import NodeFiles, RecordWriter, save_vector
from gossip.results.summary import NodeSummary
from gossip.run.capacity import check_simulation_fits, dataset_bytes
from gossip.run.progress import ProgressBar
from gossip.seeds import batch_seed
from gossip.topology import Topology, topology_of

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation produced."""

    run_dir: Path | None
    accuracy: np.ndarray  # (N,) final test accuracy per node
    curve: tuple[tuple[int, float], ...]  # (round, mean accuracy over nodes)
    wall_s: float


def _check_honoured(cfg: RunConfig) -> None:
    """Refuse, before anything is built, a setting of the config that changes a launched run and that this math leaves out.

    Each would otherwise be ignored without a word, and the curve compared with a launched run's would not be
    the same run's: attackers, compressed or narrowed models on the wire, stragglers (push-sum needs async mode, refused already).
    """
    ignored = {
        f"[byzantine] nodes = {list(cfg.byzantine.nodes)} (attackers)": bool(cfg.byzantine.nodes),
        f"[compression] method = {cfg.compression.method!r}": cfg.compression.method != "none",
        f"[transport] wire_dtype = {cfg.transport.wire_dtype!r} (models rounded on the wire)": cfg.transport.wire_dtype != "float32",
        f"[faults] slow_nodes = {list(cfg.faults.slow_nodes)}": bool(cfg.faults.slow_nodes) and cfg.faults.step_delay_s > 0,
    }
    for setting, present in ignored.items():
        if present:
            raise ConfigError(f"simulate does not model {setting}; run this config with gossip launch, or drop the setting")


def _check_links(cfg: RunConfig, topo: Topology) -> None:
    """Refuse emulated links (``[links]`` or an edge's attributes): delay, loss and bandwidth decide what arrives in a launched run."""
    from gossip.net.linkemu import link_specs

    for i in range(topo.n):
        emulated = link_specs(i, topo, cfg.links)
        if emulated:
            j = min(emulated)
            spec = ", ".join(f"{key} = {value:g}" for key, value in dataclasses.asdict(emulated[j]).items() if value)
            raise ConfigError(
                f"simulate does not model emulated links (edge ({i}, {j}): {spec}); "
                "run this config with gossip launch, or set [links] enabled = false and its values to 0"
            )


def _check_supported(cfg: RunConfig, layout: Layout) -> None:
    if cfg.aggregation.rule != "dsgd":
        raise ConfigError(f"simulate supports aggregation.rule = 'dsgd' only, not {cfg.aggregation.rule!r}")
    if layout.of_kind("norm", "norm_stat"):
        raise ConfigError(f"simulate supports models without normalisation layers; {cfg.model.name!r} has some")
    if cfg.training.mode != "sync" or cfg.schedule.mode != "every" or cfg.topology.peers != "all" or cfg.merge.enabled:
        raise ConfigError("simulate supports synchronous D-SGD every round only (no schedule, one-peer graph, async mode or merge)")
    if cfg.training.precision != "fp32" or cfg.training.device.startswith("cuda"):  # its models would not be launch's
        raise ConfigError("simulate trains float32 on the CPU; training.precision and a cuda device are for gossip launch")


@dataclass(frozen=True)
class _Data:
    """The dataset as tensors, and each node's shard (indices into the training set) and batch order."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    shards: list[torch.Tensor]
    batches: list[BatchOrder]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every node's next minibatch, stacked: ``(N, B, ...)`` inputs and ``(N, B)`` labels."""
        idx = torch.stack([shard[order.next()] for shard, order in zip(self.shards, self.batches, strict=True)])
        return self.x_train[idx], self.y_train[idx]


class _Models:
    """All N models as the rows of one ``(N, P)`` matrix, with the model's loss, gradient and logits vectorised over rows."""

    def __init__(self, module: nn.Module, layout: Layout, X: torch.Tensor, loss: Loss, metric: Scorer) -> None:
        self.module = module
        self.layout = layout
        self.X = X
        self.loss, self.metric = loss, metric
        self.grads = vmap(grad(self._loss))
        self.losses = vmap(self._loss)
        self._logits = vmap(self._forward, in_dims=(0, None))

    def _forward(self, x: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        params = {s.name: x[s.offset : s.stop].view(s.shape) for s in self.layout.specs}
        logits: torch.Tensor = functional_call(self.module, params, (xb,))
        return logits

    def _loss(self, x: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return self.loss(self._forward(x, xb), yb)

    @torch.no_grad()
    def evaluate(self, x_test: torch.Tensor, y_test: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per node: the test metric (``[training] metric``) and test loss, ``(N,)`` each."""
        outputs = self._logits(self.X, x_test)  # (N, T, C)
        metric = np.array([self.metric(out, y_test) for out in outputs])
        test_loss = torch.stack([self.loss(out, y_test) for out in outputs]).numpy()
        return metric, test_loss


def simulate(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    topology: Topology | None = None,
    progress: bool = False,
    out: Any = None,
) -> SimulationResult:
    """Run ``cfg``'s D-SGD in one process; write per-node records to ``run_dir`` when given.

    ``progress``: draw the launcher's progress line on ``out`` (stderr by default) as the rounds go by.
    """
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    _check_honoured(cfg)
    topo, ds = _inputs(cfg, dataset, topology)
    _check_links(cfg, topo)
    data, models = _setup(cfg, topo, ds)
    bar = ProgressBar(cfg.training.rounds, topo.n, progress, out or sys.stderr)
    writers = [RecordWriter(NodeFiles(run_dir, i).records, truncate=True) for i in range(topo.n)] if run_dir else []
    try:
        accuracy, curve = _train(cfg, topo, data, models, writers, bar)
    finally:
        for w in writers:
            w.close()
        bar.close()
    wall = time.perf_counter() - start
    if run_dir:
        _write_finals(Path(run_dir), models.X, accuracy, cfg.training.rounds)
    return SimulationResult(Path(run_dir) if run_dir else None, accuracy, tuple(curve), wall)


def _inputs(cfg: RunConfig, dataset: Dataset | None, topology: Topology | None) -> tuple[Topology, Dataset]:
    """The graph and the data, each built only once the memory check on the config's numbers has passed.

    A graph, dataset or model of a mistyped size is never built: the check runs on the config's numbers
    first (a dataset passed in is already in memory and counts nothing), then on the graph's node count.
    """
    if dataset is not None:
        shape, classes, data = dataset.input_shape, dataset.num_classes, 0
    else:
        shape, classes, train, test = dataset_shape_of(cfg)
        data = dataset_bytes(shape, train + test)
    params = parameter_count_of(cfg, shape, classes)
    check_simulation_fits(topology.n if topology else max(cfg.run.nodes, 1), params, data=data)
    topo = topology or topology_of(cfg)
    check_simulation_fits(topo.n, params, data=data)
    return topo, dataset or dataset_of(cfg)


def _setup(cfg: RunConfig, topo: Topology, ds: Dataset) -> tuple[_Data, _Models]:
    """Shards, batch orders and the N initial models, exactly as the N node processes would build them."""
    check_objectives(cfg, ds)  # the model, loss and metric on two samples, before N models are built
    parts = split_training_set(cfg, topo.n, ds.y_train)
    batches = [BatchOrder(len(p), cfg.data.batch_size, batch_seed(cfg.run.seed, i)) for i, p in enumerate(parts)]
    if len({b.batch for b in batches}) != 1:  # before N models are built: a mistake is refused at once
        raise ConfigError("simulate needs every shard to hold at least one batch (a shard is smaller than data.batch_size)")
    flats = [build_flat_model(NodePlan(NodeId(i), cfg, topo, ds, parts[i], None)) for i in range(topo.n)]
    _check_supported(cfg, flats[0].layout)
    data = _Data(
        torch.from_numpy(ds.x_train),
        torch.from_numpy(ds.y_train),
        torch.from_numpy(ds.x_test),
        torch.from_numpy(ds.y_test),
        [torch.from_numpy(p) for p in parts],
        batches,
    )
    stacked = torch.stack([f.vector for f in flats])
    return data, _Models(flats[0].module, flats[0].layout, stacked, build_loss(cfg.training), build_metric(cfg.training))


def _train(
    cfg: RunConfig, topo: Topology, data: _Data, models: _Models, writers: list[RecordWriter], bar: ProgressBar
) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Every round: the local steps of all N models, one mixing step ``X ← W X``, evaluation when due, one record per node.

    Returns the last evaluation's accuracy per node and the curve of mean accuracy by round.
    """
    tcfg = cfg.training
    W = torch.from_numpy(np.asarray(topo.mixing_matrix(cfg.topology.weights), dtype=np.float32))
    rule, state = update_rule(tcfg), UpdateState()
    curve: list[tuple[int, float]] = []
    accuracy = np.zeros(topo.n)
    test_loss: np.ndarray | None = None
    models.module.train()
    for t in range(tcfg.rounds):
        t0 = time.perf_counter()
        loss = _local_steps(models, data, tcfg.local_steps, rule, state)
        mixed = W @ models.X
        distance = torch.linalg.vector_norm(models.X - mixed, dim=1)
        models.X = mixed
        evaluate = (t + 1) % tcfg.eval_every == 0 or t == tcfg.rounds - 1
        if evaluate:
            accuracy, test_loss = models.evaluate(data.x_test, data.y_test)
            curve.append((t + 1, float(accuracy.mean())))
        round_s = time.perf_counter() - t0
        for i, w in enumerate(writers):
            w.write(
                _record(
                    i,
                    t,
                    topo.degree(i),
                    loss[i],
                    accuracy[i] if evaluate else None,
                    test_loss[i] if evaluate and test_loss is not None else None,
                    distance[i],
                    round_s / topo.n,
                )
            )
        bar.show(t + 1, curve[-1][1] if curve else None, float(distance.mean()))
    return accuracy, curve


def _local_steps(models: _Models, data: _Data, steps: int, rule: UpdateRule, state: UpdateState) -> np.ndarray:
    """``steps`` minibatch updates of every model at once; returns each node's mean training loss over them (NaN: none)."""
    losses = []
    for _ in range(steps):
        xb, yb = data.next_batch()
        with torch.no_grad():
            losses.append(models.losses(models.X, xb, yb))
        apply_update_(models.X, models.grads(models.X, xb, yb), state, rule)
    return torch.stack(losses).mean(0).numpy() if losses else np.full(len(data.shards), math.nan)


def _record(
    node: int, t: int, degree: int, loss: float, accuracy: float | None, test_loss: float | None, distance: torch.Tensor, round_s: float
) -> dict[str, Any]:
    """Node ``node``'s JSONL record of round ``t``, with the fields a launched node's record has (no wire: zeros, nothing missing)."""
    return {
        "node": node,
        "round": t,
        "time": time.time(),
        "loss": float(loss),
        "accuracy": float(accuracy) if accuracy is not None else None,
        "test_loss": float(test_loss) if test_loss is not None else None,
        "consensus_distance": float(distance),
        "arrived": degree,
        "missing": [],
        "bytes_sent": 0,
        "bytes_received": 0,
        "rejected": 0,
        "round_s": round_s,
    }


def _write_finals(out: Path, X: torch.Tensor, accuracy: np.ndarray, rounds: int) -> None:
    """Each node's final vector and summary, as a launched node leaves them."""
    for i in range(len(X)):
        save_vector(NodeFiles(out, i).model, X[i].numpy())
        NodeSummary(i, "finished", rounds, float(accuracy[i]), model_hash(X[i]), simulated=True).write(NodeFiles(out, i).summary)
