"""``gossip simulate`` of an open network (``[membership] enabled``): members come and go while the models learn.

Why: whether the links graph stays connected, how the degrees spread and how the accuracy curve bends under churn
are properties of hundreds or thousands of members, which real processes on one machine cannot show. The overlay
is :mod:`gossip.topology.churn`'s: the very :class:`~gossip.topology.membership.Membership` machines a node runs,
their messages delivered in memory one step later. The models do what :mod:`gossip.node.member` does, on a
simulated clock of one ``period_s`` a step (:data:`DEFAULT_STEP_S` when ``period_s`` is 0):

- every live member that has started takes its local steps (vectorised over those members' rows, as
  :mod:`gossip.run.simulate` does), then pushes its model to one neighbour drawn at random (the node's own seeded
  generator); the receiver merges it with weight 1/2, in the order the pushes arrive (a receiver that is gone or
  not started yet loses it);
- a newcomer starts once it holds a link to a started member: from the average of its started neighbours' models;
- member ``i`` trains on shard ``i mod [topology] nodes`` with its own batch order, as a real member does.

Churn (:class:`ChurnPlan`): the initial members join through member 0 at time 0; then every ``every`` steps a
``fraction`` of the members departs (half leaving, half crashing) and is replaced by a newcomer that knows one live
member (:func:`gossip.topology.churn.churn_trace`). The records have a real member's keys (``neighbours``, ``view``,
``joins`` ...) with ``time`` on the simulated clock, so ``gossip report`` draws the neighbour graph over time.
Supported: SGD (momentum and weight decay kept per member), the merge of weight 1/2; push-sum and Adam are refused.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gossip.config import RunConfig, config_to_toml
from gossip.data import Dataset
from gossip.data.datasets import dataset_of
from gossip.data.split import split_training_set
from gossip.errors import ConfigError, ExitCode
from gossip.ids import NodeId
from gossip.learn.batches import BatchOrder
from gossip.learn.flat import model_hash
from gossip.learn.models import parameter_count_of
from gossip.learn.objectives import build_loss, build_metric, check_objectives
from gossip.learn.optim import UpdateState, apply_update_
from gossip.learn.trainer import update_rule
from gossip.node.member import settings_of
from gossip.node.plan import NodePlan, build_flat_model
from gossip.results.rundir import NodeFiles, RecordWriter, atomic_write_text, load_vector, save_vector
from gossip.results.summary import NodeSummary
from gossip.run.capacity import check_simulation_fits
from gossip.run.progress import ProgressBar
from gossip.run.simulate import _check_honoured, _Models
from gossip.run.tally import summarise
from gossip.seeds import batch_seed, push_seed
from gossip.topology import Topology, save, topology_of
from gossip.topology.churn import ChurnEvent, SimSettings, Snapshot, Stepper, bootstrap_trace, churn_trace, merge

__all__ = ["DEFAULT_STEP_S", "ChurnPlan", "OpenResult", "check_open", "open_trace", "push_weights", "simulate_open", "simulated_open_run"]

DEFAULT_STEP_S = 0.1  # the simulated period of a step when [training] period_s is 0 ("as fast as the node trains")


@dataclass(frozen=True)
class ChurnPlan:
    """``--churn``, ``--churn-every`` and ``--members``: the share of members replaced per period, the period in
    steps, and the initial size (``None``: the run's node count)."""

    fraction: float = 0.0
    every: int = 100
    members: int | None = None


@dataclass(frozen=True)
class OpenResult:
    """What an open simulation produced: the curve of mean accuracy over live members, the overlay at the end."""

    run_dir: Path | None
    curve: tuple[tuple[int, float], ...]  # (step, mean of the live members' latest evaluations)
    overlay: Snapshot  # the links graph over the live members after the last step
    members: int  # ids used, 0..members-1 (the initial members and every newcomer)
    wall_s: float
    finished: tuple[int, ...] = field(default=())  # the members live at the end


def check_open(cfg: RunConfig, plan: ChurnPlan) -> None:
    """Refuse, in one line, churn flags that make no sense and settings this simulation would leave out."""
    if not 0 <= plan.fraction < 1:
        raise ConfigError(f"--churn is the fraction of members replaced per period, in [0, 1), not {plan.fraction:g}")
    if plan.every < 1:
        raise ConfigError(f"--churn-every is a number of rounds, at least 1, not {plan.every}")
    if plan.members is not None and plan.members < 1:
        raise ConfigError(f"--members is the initial number of members, at least 1, not {plan.members}")
    if not cfg.membership.enabled:
        if plan.fraction or plan.members is not None:
            flag = "--churn" if plan.fraction else "--members"
            raise ConfigError(f"{flag} needs an open network: --set membership.enabled=true --set training.mode=async")
        return
    if plan.fraction and 0 < (plan.members or cfg.run.nodes) < 2:  # 0: the topology file's count, known later
        raise ConfigError("--churn needs at least 2 members (a newcomer is given a live member's address)")
    _check_honoured(cfg)
    if cfg.training.push_sum or cfg.training.optimizer != "sgd" or cfg.aggregation.rule != "dsgd":
        raise ConfigError(
            "simulate of an open network supports SGD and the merge of weight 1/2 (aggregation.rule = 'dsgd'); "
            "push-sum and Adam are for gossip launch"
        )
    if cfg.training.duration_s or cfg.training.precision != "fp32" or cfg.training.device.startswith("cuda"):
        raise ConfigError("simulate of an open network counts rounds, float32 on the CPU: drop training.duration_s, precision, device")


def open_trace(members: int, plan: ChurnPlan, step_s: float, rounds: int, seed: int) -> list[ChurnEvent]:
    """Member 0 starts, the other initial members join through it at time 0, and every ``plan.every`` steps
    ``plan.fraction`` of the members are replaced (half leave, half crash; each newcomer knows one live member)."""
    start = bootstrap_trace(members, contact=0)
    if not plan.fraction:
        return start
    churn = churn_trace(members, plan.fraction, plan.every * step_s, seed, until_s=rounds * step_s)
    return list(merge(start, churn))


def push_weights(receivers: list[int]) -> tuple[dict[int, float], list[float]]:
    """Sequential merges of weight 1/2, as one scale per receiver and one weight per push.

    Pushes arriving in this order at ``receivers[k]`` give ``x ← (x + m_k) / 2`` each: a receiver of ``c`` pushes
    keeps ``2^-c`` of its model, and its ``j``-th push (from 1) weighs ``2^-(c - j + 1)``."""
    total: dict[int, int] = {}
    for r in receivers:
        total[r] = total.get(r, 0) + 1
    seen: dict[int, int] = {}
    weights = []
    for r in receivers:
        seen[r] = seen.get(r, 0) + 1
        weights.append(0.5 ** (total[r] - seen[r] + 1))
    return {r: 0.5**c for r, c in total.items()}, weights


class _Members:
    """The models of every member id (rows of one matrix), who has started, and each one's round, batches and files."""

    def __init__(self, cfg: RunConfig, topo: Topology, ds: Dataset, capacity: int, run_dir: Path | None) -> None:
        self.cfg = cfg
        check_objectives(cfg, ds)
        self.parts = [torch.from_numpy(p) for p in split_training_set(cfg, topo.n, ds.y_train)]
        plans = [NodePlan(NodeId(i), cfg, topo, ds, self.parts[i % topo.n].numpy(), None) for i in range(capacity)]
        flats = [build_flat_model(p) for p in plans]
        if flats[0].layout.of_kind("norm", "norm_stat"):
            raise ConfigError(f"simulate supports models without normalisation layers; {cfg.model.name!r} has some")
        self.models = _Models(
            flats[0].module, flats[0].layout, torch.stack([f.vector for f in flats]), build_loss(cfg.training), build_metric(cfg.training)
        )
        self.momentum = torch.zeros_like(self.models.X)
        self.rule = update_rule(cfg.training)
        self.x_train, self.y_train = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
        self.x_test, self.y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
        self.shards = topo.n
        self.batches = [BatchOrder(len(self.parts[i % topo.n]), cfg.data.batch_size, batch_seed(cfg.run.seed, i)) for i in range(capacity)]
        self.push_rng = [np.random.default_rng(push_seed(cfg.run.seed, i)) for i in range(capacity)]
        self.started: dict[int, int] = {}  # member -> its next round
        self.accuracy: dict[int, float] = {}  # member -> its latest evaluation
        self.test_loss: dict[int, float] = {}
        self.synced_from: dict[int, tuple[int, ...]] = {}
        self.run_dir = run_dir
        self.writers: dict[int, RecordWriter] = {}

    def start(self, i: int, neighbours: list[int]) -> None:
        """Member ``i`` starts training: from the average of its started neighbours' models (none: its own)."""
        if neighbours:
            self.models.X[i] = self.models.X[neighbours].mean(dim=0)
        self.synced_from[i] = tuple(neighbours)
        self.started[i] = 0
        if self.run_dir is not None:
            self.writers[i] = RecordWriter(NodeFiles(self.run_dir, i).records, truncate=True)

    def stop(self, i: int, status: str | None) -> None:
        """Member ``i`` is gone; one that left says so in its summary (``stopped``), one that crashed leaves none."""
        rounds = self.started.pop(i)
        writer = self.writers.pop(i, None)
        if writer is not None:
            writer.close()
            if status is not None:
                self.summary(i, status, rounds)

    def summary(self, i: int, status: str, rounds: int) -> None:
        if self.run_dir is None:
            return
        x = self.models.X[i]
        save_vector(NodeFiles(self.run_dir, i).model, x.numpy())
        NodeSummary(i, status, rounds, self.accuracy.get(i, math.nan), model_hash(x), simulated=True).write(
            NodeFiles(self.run_dir, i).summary
        )

    def local_steps(self, rows: list[int]) -> np.ndarray:
        """``local_steps`` SGD updates of the given members' models; each one's mean training loss (NaN: none)."""
        idx = torch.tensor(rows, dtype=torch.int64)
        X, buf = self.models.X[idx], self.momentum[idx]
        losses = []
        for _ in range(self.cfg.training.local_steps):
            batch = torch.stack([self.parts[i % self.shards][self.batches[i].next()] for i in rows])
            xb, yb = self.x_train[batch], self.y_train[batch]
            with torch.no_grad():
                losses.append(self.models.losses(X, xb, yb))
            state = UpdateState(buf=buf, steps=1)  # momentum per member: a newcomer's starts at zero, as a node's optimiser
            apply_update_(X, self.models.grads(X, xb, yb), state, self.rule)
            buf = state.buf if state.buf is not None else buf
        self.models.X[idx], self.momentum[idx] = X, buf
        return torch.stack(losses).mean(0).numpy() if losses else np.full(len(rows), math.nan)

    def evaluate(self, rows: list[int]) -> None:
        if not rows:
            return
        full = self.models.X
        try:
            self.models.X = full[torch.tensor(rows, dtype=torch.int64)]
            metric, loss = self.models.evaluate(self.x_test, self.y_test)
        finally:
            self.models.X = full
        self.accuracy.update(zip(rows, (float(a) for a in metric), strict=True))
        self.test_loss.update(zip(rows, (float(v) for v in loss), strict=True))

    def push(self, rows: list[int], stepper: Stepper) -> tuple[dict[int, int | None], dict[int, list[tuple[int, float]]]]:
        """Each member's push to one random neighbour, merged with weight 1/2 in order: each member's target, and
        per receiver the (sender, distance between the two models) of what it merged."""
        targets: dict[int, int | None] = {}
        for i in rows:
            neighbours = sorted(stepper.nodes[i].neighbours)
            targets[i] = neighbours[int(self.push_rng[i].integers(len(neighbours)))] if neighbours else None
        sends = [(i, j) for i, j in targets.items() if j is not None and j in self.started]  # gone, or not started: lost
        arrived: dict[int, list[tuple[int, float]]] = {}
        if not sends:
            return targets, arrived
        X = self.models.X
        src = torch.tensor([i for i, _ in sends], dtype=torch.int64)
        dst = torch.tensor([j for _, j in sends], dtype=torch.int64)
        pushed = X[src]
        distances = torch.linalg.vector_norm(X[dst] - pushed, dim=1).tolist()
        scale, weights = push_weights([j for _, j in sends])
        receivers = torch.tensor(list(scale), dtype=torch.int64)
        X[receivers] *= torch.tensor(list(scale.values()), dtype=X.dtype).unsqueeze(1)
        X.index_add_(0, dst, pushed * torch.tensor(weights, dtype=X.dtype).unsqueeze(1))
        for (i, j), d in zip(sends, distances, strict=True):
            arrived.setdefault(j, []).append((i, d))
        return targets, arrived


def _record(
    members: _Members, i: int, now: float, epoch: float, loss: float, node: Any, pushed_to: int | None, got: list[tuple[int, float]]
) -> dict[str, Any]:
    """Member ``i``'s record of its round: a real member's keys (:meth:`gossip.node.member.MemberNode._step`), ``time``
    on the simulated clock, no wire (zero bytes)."""
    counts = node.counts
    t = members.started[i]
    evaluated = (t + 1) % members.cfg.training.eval_every == 0
    return {
        "node": i,
        "round": t,
        "time": epoch + now,
        "loss": float(loss),
        "accuracy": members.accuracy.get(i) if evaluated else None,
        "test_loss": members.test_loss.get(i) if evaluated else None,
        "consensus_distance": sum(d for _j, d in got) / len(got) if got else None,
        "comm": "push",
        "pushed_to": pushed_to,
        "arrived": len(got),
        "merged_from": [j for j, _d in got],
        "mass": 1.0,
        "bytes_sent": 0,
        "bytes_received": 0,
        "rejected": 0,
        "neighbours": sorted(node.neighbours),
        "view": len(node.view),
        "joins": counts["joins"],
        "leaves": counts["leaves"],
        "failures": counts["failures"],
        "neighbour_changes": counts["neighbour_changes"],
        "round_s": 0.0,
    }


def _admit(members: _Members, stepper: Stepper, departed: set[int]) -> None:
    """Departures since the last step stop their members; newcomers linked to a started member start."""
    for i in [i for i in members.started if i not in stepper.nodes]:
        members.stop(i, None if i in departed else "stopped")
    for i, node in stepper.nodes.items():
        if i in members.started:
            continue
        ready = sorted(j for j in node.neighbours if j in members.started)
        if ready or (i == 0 and i not in members.synced_from):  # member 0 founds the network: it starts alone
            members.start(i, ready)


def simulate_open(
    cfg: RunConfig,
    plan: ChurnPlan,
    *,
    run_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: bool = False,
    out: Any = None,
) -> OpenResult:
    """Run ``cfg``'s open network under ``plan``'s churn for ``[training] rounds`` steps; records in ``run_dir``."""
    start = time.perf_counter()
    check_open(cfg, plan)
    step_s = cfg.training.period_s or DEFAULT_STEP_S
    topo = topology_of(cfg)
    size = plan.members or topo.n
    trace = open_trace(size, plan, step_s, cfg.training.rounds, cfg.run.seed)
    capacity = 1 + max(e.node for e in trace)
    ds = dataset or dataset_of(cfg)
    check_simulation_fits(capacity, parameter_count_of(cfg, ds.input_shape, ds.num_classes))
    members = _Members(cfg, topo, ds, capacity, Path(run_dir) if run_dir else None)
    crashed = {e.node for e in trace if e.kind == "crash"}
    stepper = Stepper(trace, SimSettings(membership=settings_of(cfg.membership), step_s=step_s, seed=cfg.run.seed))
    bar = ProgressBar(cfg.training.rounds, size, progress, out or sys.stderr)
    epoch, curve = time.time(), []
    now = 0.0
    try:
        for t in range(cfg.training.rounds):
            now = stepper.step(t)
            _admit(members, stepper, crashed)
            _round(members, stepper, now, epoch, last=t == cfg.training.rounds - 1)
            if (t + 1) % cfg.training.eval_every == 0 or t == cfg.training.rounds - 1:
                scores = [members.accuracy[i] for i in members.started if i in members.accuracy]
                curve.append((t + 1, float(np.mean(scores)) if scores else math.nan))
            bar.show(t + 1, curve[-1][1] if curve else None, None)
    finally:
        for w in members.writers.values():
            w.close()
        bar.close()
    for i, rounds in members.started.items():
        members.summary(i, "finished", rounds)
    return OpenResult(
        Path(run_dir) if run_dir else None,
        tuple(curve),
        stepper.snapshot(now),
        capacity,
        time.perf_counter() - start,
        tuple(sorted(members.started)),
    )


def _round(members: _Members, stepper: Stepper, now: float, epoch: float, *, last: bool) -> None:
    """One step of every started member: local steps, the pushes and merges, evaluations when due, the records."""
    rows = sorted(members.started)
    if not rows:
        return
    loss = members.local_steps(rows)
    targets, arrived = members.push(rows, stepper)
    every = members.cfg.training.eval_every
    members.evaluate([i for i in rows if last or (members.started[i] + 1) % every == 0])
    for k, i in enumerate(rows):
        record = _record(members, i, now, epoch, loss[k], stepper.nodes[i], targets[i], arrived.get(i, []))
        if last:
            record.update(accuracy=members.accuracy.get(i), test_loss=members.test_loss.get(i))
        writer = members.writers.get(i)
        if writer is not None:
            writer.write(record)
        members.started[i] += 1


def simulated_open_run(cfg: RunConfig, plan: ChurnPlan, path: Path, progress: bool, out: Any) -> tuple[Path, int]:
    """``gossip simulate`` of an open network into ``path``: the records, then the files a launch leaves (config,
    the shards' topology, summary.json over every member id; its accuracy figures over the members live at the end)."""
    result = simulate_open(cfg, plan, run_dir=path, progress=progress, out=out)
    path = path.resolve()
    topology = topology_of(cfg)
    resolved = cfg.replace(run={"nodes": topology.n})
    atomic_write_text(path / "config.toml", config_to_toml(resolved))
    save(topology, path / "topology.json")
    save(topology, path / "topology.graphml")
    # summarise reads the node count and the name only; the links over time are in the records (neighbours)
    ids = Topology.from_edges(result.members, ((i, i + 1) for i in range(result.members - 1)), f"open-{result.members}-members")

    summary = summarise(path, ids, resolved, result.wall_s)
    accs = [n.accuracy for n in summary.per_node if n.status == "finished" and n.accuracy is not None]
    mean = sum(accs) / len(accs) if accs else None
    summary = dataclasses.replace(
        summary,
        accuracy_mean=mean,
        accuracy_std=math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs)) if accs and mean is not None else None,
        accuracy_min=min(accs, default=None),
        accuracy_max=max(accs, default=None),
    )
    summary.write(path / "summary.json")
    o = result.overlay
    graph = "connected" if o.connected else f"{o.components} components, the settled members {'' if o.settled_connected else 'NOT '}in one"
    print(
        f"gossip: simulated an open network of {o.live} members ({result.members} ids, {o.newcomers} newcomers) in {result.wall_s:.1f} s: "
        f"links graph {graph}, links {o.degree_min}/{o.degree_mean:.1f}/{o.degree_max} (min/mean/max); run directory {path}",
        file=out,
    )
    diverged = [i for i in result.finished if not np.isfinite(load_vector(NodeFiles(path, i).model)).all()]
    if diverged:
        print(f"gossip: error: the final models of members {', '.join(map(str, diverged))} are not finite (diverged)", file=out)
        return path, int(ExitCode.DIVERGED)
    return path, int(ExitCode.FINISHED)
