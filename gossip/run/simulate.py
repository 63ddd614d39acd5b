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

Two disruptions a launched run meets are modelled (bench/disruption.py uses both): a node whose part of the
split is empty (a split with ``allows_empty = True``) takes no local steps and only mixes, as its process does;
and ``removed={round: nodes}`` removes nodes from that round on, as a SIGKILL under ``--keep-going`` does: their
models freeze and leave the mix, and each survivor's weight on a removed neighbour goes to its own self weight
(what a launched node's D-SGD does with a neighbour that did not arrive), so W stays symmetric and doubly
stochastic among the survivors. A removed node's records stop there and its summary says ``stopped``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Collection, Mapping
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

__all__ = ["SimulationResult", "mixing_without", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation produced."""

    run_dir: Path | None
    accuracy: np.ndarray  # (N,) final test accuracy per node (NaN: a removed node)
    curve: tuple[tuple[int, float], ...]  # (round, mean accuracy over the nodes not removed)
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
    batch: int  # the batch size every node with data draws

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every node's next minibatch, stacked: ``(N, B, ...)`` inputs and ``(N, B)`` labels.

        A node without data draws sample 0 ``B`` times, to keep the stack rectangular; its step is undone (:func:`_local_steps`).
        """
        none = torch.zeros(self.batch, dtype=torch.int64)
        idx = torch.stack([shard[order.next()] if len(shard) else none for shard, order in zip(self.shards, self.batches, strict=True)])
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
    removed: Mapping[int, Collection[int]] | None = None,
) -> SimulationResult:
    """Run ``cfg``'s D-SGD in one process; write per-node records to ``run_dir`` when given.

    ``progress``: draw the launcher's progress line on ``out`` (stderr by default) as the rounds go by.
    ``removed``: round -> nodes that take no part from that round on (see the module); none by default.
    """
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    _check_honoured(cfg)
    topo, ds = _inputs(cfg, dataset, topology)
    _check_links(cfg, topo)
    schedule = _removals(removed or {}, topo.n, cfg.training.rounds)
    data, models = _setup(cfg, topo, ds)
    bar = ProgressBar(cfg.training.rounds, topo.n, progress, out or sys.stderr)
    writers = [RecordWriter(NodeFiles(run_dir, i).records, truncate=True) for i in range(topo.n)] if run_dir else []
    try:
        accuracy, curve, gone = _train(cfg, topo, data, models, writers, bar, schedule)
    finally:
        for w in writers:
            w.close()
        bar.close()
    wall = time.perf_counter() - start
    if run_dir:
        _write_finals(Path(run_dir), models.X, accuracy, cfg.training.rounds, gone)
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
    sizes = {b.batch for b, p in zip(batches, parts, strict=True) if len(p)}  # a node without data draws no batch
    if len(sizes) != 1:  # before N models are built: a mistake is refused at once
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
        sizes.pop(),
    )
    stacked = torch.stack([f.vector for f in flats])
    return data, _Models(flats[0].module, flats[0].layout, stacked, build_loss(cfg.training), build_metric(cfg.training))


def _removals(removed: Mapping[int, Collection[int]], n: int, rounds: int) -> dict[int, list[int]]:
    """``simulate``'s ``removed``, checked: rounds in 1..rounds-1, nodes in 0..n-1, each removed once, one node left."""
    out: dict[int, list[int]] = {}
    seen: set[int] = set()
    for t, nodes in sorted(removed.items()):
        if not 1 <= t < rounds:
            raise ConfigError(f"simulate: nodes can be removed at rounds 1..{rounds - 1}, not at round {t}")
        bad = sorted(set(nodes) & seen or {i for i in nodes if not 0 <= i < n})
        if bad:
            raise ConfigError(f"simulate: node {bad[0]} cannot be removed at round {t} (nodes are 0..{n - 1}, each removed once)")
        seen |= set(nodes)
        out[t] = sorted(nodes)
    if len(seen) >= n:
        raise ConfigError(f"simulate: removing all {n} nodes leaves nothing to train")
    return out


def mixing_without(W: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """``W`` once the nodes where ``gone`` is true left: their edges' weights go to the survivors' self weights, their rows are the identity.

    A launched D-SGD node gives the weight of a neighbour whose model did not arrive to its own model
    (:func:`~gossip.algorithms.dsgd.weighted_average`); this is that row for every round after the removal.
    The result is symmetric with rows summing to 1 (float64, like ``W``).
    """
    out = np.array(W, dtype=np.float64)
    out[gone, :] = 0.0
    out[:, gone] = 0.0
    np.fill_diagonal(out, 0.0)
    np.fill_diagonal(out, 1.0 - out.sum(axis=1))
    return out


def _train(
    cfg: RunConfig,
    topo: Topology,
    data: _Data,
    models: _Models,
    writers: list[RecordWriter],
    bar: ProgressBar,
    removals: dict[int, list[int]],
) -> tuple[np.ndarray, list[tuple[int, float]], dict[int, int]]:
    """Every round: the local steps of all N models, one mixing step ``X ← W X``, evaluation when due, one record per node.

    Returns the last evaluation's accuracy per node (NaN: removed), the curve of mean accuracy by round over the
    nodes not removed, and the round each removed node left at.
    """
    tcfg = cfg.training
    W = torch.from_numpy(np.asarray(topo.mixing_matrix(cfg.topology.weights), dtype=np.float32))
    rule, state = update_rule(tcfg), UpdateState()
    curve: list[tuple[int, float]] = []
    accuracy = np.zeros(topo.n)
    test_loss: np.ndarray | None = None
    gone = np.zeros(topo.n, dtype=bool)
    gone_at: dict[int, int] = {}
    idle = np.array([len(shard) == 0 for shard in data.shards])  # no data: no local steps
    models.module.train()
    for t in range(tcfg.rounds):
        if t in removals:
            gone[removals[t]] = True
            gone_at.update(dict.fromkeys(removals[t], t))
            W = torch.from_numpy(mixing_without(topo.mixing_matrix(cfg.topology.weights), gone).astype(np.float32))
        t0 = time.perf_counter()
        frozen = idle | gone
        loss = _local_steps(models, data, tcfg.local_steps, rule, state, torch.from_numpy(frozen) if frozen.any() else None)
        mixed = W @ models.X
        distance = torch.linalg.vector_norm(models.X - mixed, dim=1)
        models.X = mixed
        evaluate = (t + 1) % tcfg.eval_every == 0 or t == tcfg.rounds - 1
        if evaluate:
            accuracy, test_loss = models.evaluate(data.x_test, data.y_test)
            curve.append((t + 1, float(accuracy[~gone].mean())))
        round_s = time.perf_counter() - t0
        for i, w in enumerate(writers):
            if gone[i]:
                continue
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
    return np.where(gone, np.nan, accuracy), curve, gone_at


def _local_steps(models: _Models, data: _Data, steps: int, rule: UpdateRule, state: UpdateState, frozen: torch.Tensor | None) -> np.ndarray:
    """``steps`` minibatch updates of every model at once; returns each node's mean training loss over them (NaN: none).

    The rows where ``frozen`` is true (nodes without data, removed nodes) are put back after each update: they take no step.
    """
    losses = []
    for _ in range(steps):
        xb, yb = data.next_batch()
        with torch.no_grad():
            losses.append(models.losses(models.X, xb, yb))
        kept = models.X[frozen] if frozen is not None else None
        apply_update_(models.X, models.grads(models.X, xb, yb), state, rule)
        if frozen is not None and kept is not None:
            models.X[frozen] = kept
    out = torch.stack(losses).mean(0).numpy() if losses else np.full(len(data.shards), math.nan)
    if frozen is not None:
        out[frozen.numpy()] = math.nan
    return out


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


def _write_finals(out: Path, X: torch.Tensor, accuracy: np.ndarray, rounds: int, gone_at: Mapping[int, int]) -> None:
    """Each node's final vector and summary, as a launched node leaves them (a removed node: ``stopped`` at its round, no accuracy)."""
    for i in range(len(X)):
        save_vector(NodeFiles(out, i).model, X[i].numpy())
        status, done, acc = ("stopped", gone_at[i], None) if i in gone_at else ("finished", rounds, float(accuracy[i]))
        NodeSummary(i, status, done, acc, model_hash(X[i]), simulated=True).write(NodeFiles(out, i).summary)
