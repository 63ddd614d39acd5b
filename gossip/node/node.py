"""The node: one vertex of the graph, running the round loop train → send → collect → aggregate → record.

This module wires the pieces together and does nothing else: the math is in ``gossip.algorithms``,
validation in ``gossip.net.wire``, sockets in ``gossip.net.transport``. :func:`plan_node` does the reading
(config, topology, data); :class:`Node`'s constructor does no I/O; work starts in :meth:`Node.run`.

Synchronous D-SGD round *t* (adapt-then-combine):

1. ``local_steps`` SGD steps on the node's shard;
2. the parameter vector goes to every neighbour, tagged *t* (handed to ZeroMQ live: zero-copy from
   1 MiB, mixed only once ZeroMQ let go; copied by the socket below);
3. wait for the neighbours' round-*t* models until ``round_timeout_s`` (a neighbour that missed its last
   round: a shorter wait; one that is down: none, ``gossip.node.liveness``); models for later rounds that
   arrive meanwhile are buffered, models for earlier rounds are dropped and counted (``stale_round``);
4. mix with the topology's weights over what arrived — a missing neighbour's weight goes back to the
   node itself;
5. evaluate, record one JSONL line, update the metrics.

Which neighbours a node sends to and waits for in round *t* is the schedule's (``gossip.topology.schedule``):
every neighbour every round by default; a round of a sparser schedule in which the node neither sends
nor expects anything is local training only (``"comm": "none"`` in its record). ``[training] mode =
"async"`` replaces the rounds with gossip learning (:meth:`Node.run_async`): push to one random
neighbour every ``period_s``, merge whatever arrives on receipt. With ``[merge] enabled`` every live
node ends with the exact average of all live nodes' models (``gossip.node.merge``). ``[compression] method =
"topk"`` replaces step 2's model by a CHOCO-gossip top-k delta and step 4's mix by CHOCO's (``gossip.node.choco``).

Determinism: batches are seeded per node and aggregation sums in sorted sender order, so as long as
every model arrives within the timeout, two runs with the same config give bit-identical models
whatever the arrival order. A timeout changes the mix; it is recorded (``missing`` in the round's
record and ``gossip_peer_missed_rounds_total``), so a divergence between runs is always visible.

Crashes: a node checkpoints every ``checkpoint_every`` rounds, at least ``checkpoint_interval_s`` apart.
Started with a checkpoint (``gossip node --resume``) it restores it, greets its neighbours, learns their round from their
welcomes (or takes the round ``gossip launch --resume`` agreed on) and, if that is beyond its inbox window,
skips to it instead of replaying rounds whose models its neighbours no longer want
(:meth:`Node._rejoin_round`). A running node that falls that far behind (paused, starved) skips the same
way once every live neighbour has shown a later round (:meth:`Node._catch_up`). Neighbours need no
special case: they wait for a neighbour that stopped sending once for the round timeout, then briefly,
then not at all until its models arrive again (``gossip.node.liveness``), and report it down and back.
``[links]`` shapes the node's out-links (``gossip.net.linkemu``) and ``[faults]`` can make it a straggler, for experiments.

Divergence: a sync node whose model is no longer finite after its local steps (or after its mix) stops
there — status ``"diverged"``, its last finite checkpoint kept, a bye so its neighbours stop waiting
for it — instead of sending models every neighbour refuses, round after round (``gossip node`` exits 3).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gossip.algorithms import InPlaceAggregator, build_aggregator, layer_segments, layer_variance, weighted_average
from gossip.algorithms.merge import recalibrate_norm_stats, stat_mask_of
from gossip.algorithms.variance import LayerVariance
from gossip.config import RunConfig, config_to_toml
from gossip.data import Dataset, load_dataset, load_npz, load_part, partition, partition_key
from gossip.errors import ConfigError, PeerUnreachable, RejectReason, WireError
from gossip.ids import NodeId
from gossip.learn.flat import FlatModel, flatten_, model_hash
from gossip.learn.models import build_model
from gossip.learn.trainer import Evaluation, LocalTrainer, StepResult
from gossip.net.linkemu import emulate_links
from gossip.net.ratelimit import RateLimiter
from gossip.net.sendbuffers import SnapshotPool, track_live, until_released
from gossip.net.transport import Transport
from gossip.net.wire import MERGE_KINDS, Expectation, Kind, Message, decode, encode
from gossip.net.zeromq import COPY_BELOW_BYTES
from gossip.node import checkpoint
from gossip.node.asyncgossip import AsyncGossip
from gossip.node.choco import ChocoGossip
from gossip.node.inbox import Inbox
from gossip.node.liveness import Liveness
from gossip.node.merge import GlobalMerge, MergeOutcome
from gossip.node.roundlog import RoundLines
from gossip.ops.metrics import MetricsServer, NodeMetrics
from gossip.results.rundir import NodeFiles, RecordWriter, keep_records_before, save_vector, write_json
from gossip.topology.graph import Topology, parse_spec
from gossip.topology.schedule import Exchange, Schedule

__all__ = [
    "Diverged",
    "Node",
    "NodePlan",
    "NodeResult",
    "all_finite",
    "build_flat_model",
    "message_limit",
    "plan_node",
    "run_id_of",
    "shard_key",
    "split_training_set",
]

log = logging.getLogger("gossip.node")  # the name log readers grep for (gossip.node node=3 round=...)

HEADER_SLACK_BYTES = 8192
PROBE_EVERY_S = 1.0  # a neighbour that is down gets a hello this often: it re-opens its link to us if it is alive
REOPEN_EVERY_S = 2.0  # a running node re-opens its link to a neighbour that says hello at most this often
WELCOME_WINDOW_S = 5.0  # a welcome counts this long (or two round timeouts) after our last hello to its sender


def run_id_of(cfg: RunConfig) -> bytes:
    """8 bytes naming the learning problem, so nodes of different runs never mix models.

    Derived from the sections every node must agree on (not from addresses or ports, which differ
    per node in a container deployment), so N independently started daemons agree without talking.
    """
    shared = dataclasses.replace(cfg, transport=type(cfg.transport)(), metrics=type(cfg.metrics)(), security=type(cfg.security)())
    return hashlib.blake2b(config_to_toml(shared).encode(), digest_size=8).digest()


@dataclass(frozen=True)
class NodePlan:
    """Everything a node needs, read from disk; building it is the only I/O before ``run()``."""

    node_id: NodeId
    cfg: RunConfig
    topology: Topology
    dataset: Dataset
    shard: np.ndarray  # indices of this node's training samples
    run_dir: Path | None
    resume: checkpoint.Checkpoint | None = None  # start from this state (gossip node --resume)
    join_round: int | None = None  # the round a resumed run agreed on (gossip launch --resume); None: ask the neighbours


def plan_node(
    cfg: RunConfig, node_id: int, run_dir: str | Path | None = None, *, resume: bool = False, join_round: int | None = None
) -> NodePlan:
    """Load the topology and the data for ``node_id`` (the data cache in ``run_dir`` if there is one).

    With ``resume``, also the node's checkpoint in ``run_dir`` when there is one (none: a fresh start), and
    ``join_round``, the round the whole run resumes at (a checkpoint that far behind skips to it).
    """
    if resume and not run_dir:
        raise ConfigError("--resume needs --run-dir: the checkpoint is nodes/node-<i>.ckpt.npz there")
    if join_round is not None and not resume:
        raise ConfigError("--join-round needs --resume: it says where a resumed run continues")
    if join_round is not None and not 0 <= join_round <= cfg.training.rounds:
        raise ConfigError(f"--join-round {join_round} is outside the run's rounds 0..{cfg.training.rounds}")
    topology = parse_spec(cfg.topology.spec, n=cfg.run.nodes or None, seed=cfg.run.seed)
    if not 0 <= node_id < topology.n:
        raise ConfigError(f"node id {node_id} is outside the topology's 0..{topology.n - 1}")
    cache = Path(run_dir) / "data.npz" if run_dir else None
    if cache is not None and cache.exists():
        dataset = load_npz(cache)
    else:
        dataset = load_dataset(cfg.data.dataset, root=cfg.data.root or None, seed=cfg.run.seed, **cfg.data.dataset_options())
    shard = (
        load_part(Path(run_dir) / "shards.npz", shard_key(cfg, topology.n, dataset.num_train), node_id, dataset.num_train)
        if run_dir
        else None
    )
    if shard is None:  # no launcher-written split for this config: compute it (the same pure function the launcher ran)
        shard = split_training_set(cfg, topology.n, dataset.y_train)[node_id]
    saved = None
    if resume:
        path = NodeFiles(run_dir, node_id).checkpoint
        saved = checkpoint.load(path) if path.exists() else None
    return NodePlan(NodeId(node_id), cfg, topology, dataset, shard, Path(run_dir) if run_dir else None, saved, join_round)


def _split_args(cfg: RunConfig) -> dict[str, Any]:
    """How ``cfg`` splits the training set: the arguments :func:`gossip.data.partition` takes after the labels and N."""
    d = cfg.data
    return {
        "scheme": d.partition,
        "seed": cfg.run.seed,
        "alpha": d.alpha,
        "shards_per_node": d.shards_per_node,
        "min_size": d.min_size or None,
    }


def split_training_set(cfg: RunConfig, n_nodes: int, labels: np.ndarray) -> list[np.ndarray]:
    """Every node's sample indices under ``cfg`` (launcher, node and simulation split alike)."""
    return partition(labels, n_nodes, **_split_args(cfg))


def shard_key(cfg: RunConfig, n_nodes: int, num_train: int) -> str:
    """What the data split of a run depends on (see :func:`gossip.data.partition_key`)."""
    return partition_key(num_train, n_nodes, **_split_args(cfg))


class Diverged(Exception):
    """The node's model stopped being finite in round ``round`` (training ``loss``): the round ends there, and the run."""

    def __init__(self, round_: int, loss: float) -> None:
        super().__init__(f"diverged at round {round_} (loss {loss})")
        self.round = round_
        self.loss = loss


@dataclass(frozen=True)
class NodeResult:
    """How a node's run ended."""

    node_id: int
    status: str  # "finished" | "stopped" | "diverged"
    rounds_completed: int  # rounds this node ran to the end, one record each (across restarts; skipped rounds not counted)
    accuracy: float  # of the final model (the merged one when the merge ran)
    model_hash: str
    accuracy_before_merge: float | None = None
    merge_members: tuple[int, ...] | None = None
    rounds_skipped: int = (
        0  # rounds skipped to catch up with the neighbours (a resume, a pause, a lag) (rounds_completed + rounds_skipped = rounds reached)
    )
    diverged_round: int | None = None  # the round after which the model was no longer finite (status "diverged")


def all_finite(vector: torch.Tensor) -> bool:
    """Whether every value is finite, in one read with no scratch: the sum (0.2 ms at 1M parameters, where
    ``isfinite(...).all()`` takes 7 ms); only a sum that is not finite — a NaN or an infinity, or finite
    values large enough to overflow float32 together — gets the exact check."""
    return math.isfinite(float(vector.sum())) or bool(torch.isfinite(vector).all())


def init_seed(cfg: RunConfig, node_id: int) -> int:
    """Shared init: one seed for all. Independent init: a distinct, reproducible seed per node."""
    if cfg.model.init == "shared":
        return cfg.run.seed
    return int.from_bytes(hashlib.blake2b(f"init/{cfg.run.seed}/{node_id}".encode(), digest_size=6).digest(), "big")


def message_limit(plan: NodePlan) -> int:
    """The largest frame a node of this run may receive: the model at float32 plus header slack."""
    if plan.cfg.transport.max_message_bytes:
        return plan.cfg.transport.max_message_bytes
    return build_flat_model(plan).layout.numel * 4 + HEADER_SLACK_BYTES


def build_flat_model(plan: NodePlan) -> FlatModel:
    """The node's model, initialised from its seed, with its state in one flat vector."""
    torch.manual_seed(init_seed(plan.cfg, plan.node_id))
    module = build_model(plan.cfg.model.name, plan.dataset.input_shape, plan.dataset.num_classes, **plan.cfg.model.options())
    return flatten_(module)


class Node:
    """One gossip node. ``await node.run()`` runs every round and returns a :class:`NodeResult`.

    The round is split into overridable steps — :meth:`train`, :meth:`exchange`, :meth:`mix` —
    so that other behaviours (a Byzantine node, a communication schedule) change one step, not the
    loop. :attr:`round_plan` is the current round's :class:`~gossip.topology.schedule.Exchange` (whom to send to,
    whom to wait for, which weights); async gossip and the final merge are :meth:`run_async` and
    :meth:`run_merge`.
    """

    def __init__(self, plan: NodePlan, transport: Transport, *, metrics: NodeMetrics | None = None, serve_metrics: bool = False) -> None:
        cfg = plan.cfg
        self.plan = plan
        self.cfg = cfg
        self.id = plan.node_id
        # link emulation ([links], edge attributes) sits between the node and the real transport
        self.transport = emulate_links(transport, plan.node_id, plan.topology, cfg.links, seed=cfg.run.seed)
        self.neighbours: tuple[NodeId, ...] = tuple(NodeId(j) for j in plan.topology.neighbours(plan.node_id))
        row = plan.topology.mixing_weights(plan.node_id, cfg.topology.weights)
        self.weights: dict[NodeId, float] = {NodeId(j): float(w) for j, w in row.items() if j != plan.node_id}
        self.run_id = run_id_of(cfg)
        self.flat = build_flat_model(plan)
        # Keep only this node's training samples: the trainer's tensors share their memory, and the rest of
        # the training set (N - 1 other shards: 15 MiB for 4000 x 1000 floats) is freed once the caller
        # lets go of its plan. plan.dataset.x_train[plan.shard] is still this node's data.
        ds = plan.dataset
        mine = dataclasses.replace(ds, x_train=np.ascontiguousarray(ds.x_train[plan.shard]), y_train=ds.y_train[plan.shard])
        self.plan = plan = dataclasses.replace(plan, dataset=mine, shard=np.arange(len(plan.shard)))
        self.trainer = LocalTrainer(
            self.flat.module,
            mine.x_train,
            mine.y_train,
            mine.x_test,
            mine.y_test,
            cfg.training,
            cfg.data.batch_size,
            seed=cfg.run.seed * 1_000_003 + int(self.id) + 1,
        )
        self.metrics = metrics or NodeMetrics(plan.node_id, self.neighbours, cfg.aggregation.rule)
        self.metrics.rounds_planned.set(cfg.training.rounds)  # lets alerts tell a finished node from a stalled one
        self.aggregator = build_aggregator(
            cfg.aggregation, self.flat.layout, cfg.variance, progress=self.progress, report=self.metrics.discarded, layers=self._saw_layers
        )
        self._in_place = self.aggregator if isinstance(self.aggregator, InPlaceAggregator) else None
        self.round_plan = Exchange("all", self.neighbours, self.neighbours, None)
        self.layers = layer_segments(self.flat.layout, cfg.variance.layers)
        self.async_gossip = AsyncGossip(self)
        self.merger = (
            GlobalMerge(
                plan.node_id,
                plan.topology.n,
                run_id=self.run_id,
                fingerprint=self.flat.layout.fingerprint,
                epoch=cfg.training.rounds,
                cfg=cfg.merge,
                send=self.send,
            )
            if cfg.merge.enabled
            else None
        )
        self.merge_outcome: MergeOutcome | None = None
        # [compression] method = "topk": CHOCO-gossip replaces the model message and the mix (gossip.node.choco)
        self.choco = ChocoGossip(self.flat.vector, self.neighbours, cfg.compression) if cfg.compression.method == "topk" else None
        self.accuracy_before_merge: float | None = None
        self._layer_var: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._mix_before: torch.Tensor | None = None  # the vector before the in-place D-SGD mix, for the consensus distance
        self.snapshots = SnapshotPool()
        self._checkpointed_at = time.monotonic()  # the start counts: the first periodic checkpoint comes an interval in
        self.checkpoints_written = 0
        # How a sync round's model leaves, decided once. Straight to ZeroMQ when it is float32 (link emulation
        # holds frames in Python: no): the live vector zero-copy when it is big enough to be worth tracking,
        # else the live vector that the socket copies inside send (no snapshot of our own: that would be a
        # second copy). A narrower wire dtype is a fresh copy anyway; else a snapshot the socket can read while we train.
        direct = cfg.transport.zero_copy and self.transport.zero_copy
        if self.choco is not None:
            self._send_path = "compressed"
        elif cfg.training.mode != "sync":
            self._send_path = "snapshot"
        elif cfg.transport.wire_dtype != "float32":
            self._send_path = "narrowed"
        elif direct:
            self._send_path = "zero-copy" if self.flat.layout.numel * 4 >= COPY_BELOW_BYTES else "socket-copy"
        else:
            self._send_path = "snapshot"
        self._serve_metrics = serve_metrics
        self.metrics_server: MetricsServer | None = None
        self.inbox = Inbox(self.neighbours, cfg.transport.max_rounds_ahead)
        self.schedule = Schedule(cfg, plan.topology)
        self.inbox.advance(0, until=self._first_horizon())
        self.expect = Expectation(
            run_id=self.run_id,
            fingerprint=self.flat.layout.fingerprint,
            numel=self.flat.layout.numel,
            node_count=plan.topology.n,
            neighbours=frozenset(self.neighbours),
            # any round of the run: the inbox keeps the rounds of its window, and a model from outside it
            # still shows where its sender is (a late node skips ahead on that); the node counts it refused
            round_min=0,
            round_max=cfg.training.rounds - 1 if cfg.training.mode == "sync" else 1 << 62,
            merge_epoch=cfg.training.rounds if cfg.merge.enabled else -1,
        )
        self.round = 0
        self.ready = False
        self._stop = False
        self._welcomed: set[NodeId] = set()  # neighbours that answered our hello: both link directions work
        self._rejects: Counter[str] = Counter()
        self._round_lines = RoundLines(cfg.run.log_interval_s)
        self._limiter = RateLimiter(cfg.security.max_messages_per_s, cfg.security.burst_messages, plan.topology.n)
        self._bytes_in = 0
        self._bytes_out = 0
        self.liveness = Liveness(self.neighbours)  # misses, late waits, and the round each neighbour last showed
        self._ahead: dict[NodeId, Message] = {}  # each neighbour's latest model from beyond our window, for when we get there
        self._hello_at: dict[NodeId, float] = {}  # when we last said hello to a neighbour: its welcome is due
        self._reopened_at: dict[NodeId, float] = {}  # when we last re-opened our link to a neighbour
        self.resumed: dict[str, int] | None = None  # {"checkpoint_round", "joined_round"} after a resume
        self.diverged: dict[str, Any] | None = None  # {"round", "loss"} once the model is no longer finite
        self._skipped: dict[str, int] | None = None  # {"from_round", "joined_round"} of a skip, for the next record
        self._late_wait_s: float | None = None  # this round's wait for late neighbours (None: none was late)
        slow = int(self.id) in cfg.faults.slow_nodes
        self._step_delay_s = cfg.faults.step_delay_s if slow else 0.0
        if plan.resume is not None and plan.resume.fingerprint != self.flat.layout.fingerprint:
            raise ConfigError(f"node {self.id}: its checkpoint belongs to another model (fingerprint {plan.resume.fingerprint.hex()})")
        if plan.resume is not None and plan.resume.vector.shape != (self.flat.layout.numel,):
            raise ConfigError(
                f"node {self.id}: its checkpoint holds {plan.resume.vector.size} values, the model has {self.flat.layout.numel}"
            )

    def _first_horizon(self) -> int:
        return self.schedule.horizon(self.id, 0, self.cfg.transport.max_rounds_ahead)

    def progress(self) -> float:
        """How far the run is, t / T: the clock of rules with a schedule (BALANCE's λ(t))."""
        return self.round / self.cfg.training.rounds

    # -------------------------------------------------------------------------------------------
    # lifecycle

    def request_stop(self) -> None:
        """Finish the current phase quickly and leave (SIGTERM, Ctrl-C)."""
        self._stop = True
        self.inbox.stop()
        if self.merger is not None:
            self.merger.stop()

    async def run(self) -> NodeResult:
        cfg = self.cfg
        files = NodeFiles(self.plan.run_dir, self.id) if self.plan.run_dir else None
        start = self._restore()
        kept = 0  # records of earlier lives of this node, before its checkpoint
        ran = 0  # rounds this life ran (a record each); skipped rounds are not among them
        if files and self.plan.resume is not None:
            kept = keep_records_before(files.records, start)  # later records are replayed (or skipped), torn ones cut
        writer = RecordWriter(files.records, truncate=self.plan.resume is None) if files else None

        await self.transport.start()
        if self.merger is not None:  # the merge talks to every node: connect now, so links are up by then
            for j in range(self.plan.topology.n):
                if j != self.id and NodeId(j) not in self.neighbours:
                    self.transport.connect(NodeId(j), cfg.transport.address_of(j))
        if self._serve_metrics:
            self.metrics_server = MetricsServer(self.metrics, cfg.metrics.host, cfg.metrics.port_of(self.id), lambda: self.ready)
            self.metrics_server.start()
        receiver = asyncio.create_task(self._receive_loop(), name=f"recv-{self.id}")
        status = "finished"
        accuracy = float("nan")
        try:
            await self._handshake()
            self.ready = True
            if cfg.training.mode == "async":
                accuracy = await self.run_async(writer)
            else:
                t = self._rejoin_round(start)
                first = True
                while not self._stop and (t := self._catch_up(t)) < cfg.training.rounds:
                    try:
                        record = await self.run_round(t)
                    except Diverged as exc:  # in its local steps: the round ends there, unrecorded
                        self.diverged = {"round": exc.round, "loss": exc.loss}
                        break
                    ran += 1
                    if first and self.resumed is not None:
                        record["resumed"] = dict(self.resumed)
                    first = False
                    if self._skipped is not None:
                        record["skipped"], self._skipped = self._skipped, None
                    if record["accuracy"] is not None:
                        accuracy = record["accuracy"]
                    self.write_record(writer, record)
                    if not self._finite():  # in the mix (an overflow): caught here for the last round's sake
                        self.diverged = {"round": t, "loss": record["loss"]}
                        break
                    every = cfg.training.checkpoint_every
                    if (
                        files
                        and every
                        and (t + 1) % every == 0
                        and t + 1 < cfg.training.rounds
                        and (time.monotonic() - self._checkpointed_at >= cfg.training.checkpoint_interval_s)
                    ):
                        self._save_checkpoint(files)
                    t += 1
            self._log_last_round()
            if self.diverged is not None:
                status = "diverged"
                log.error(
                    "node %s diverged at round %d (loss %s): its model is no longer finite; stopping",
                    self.id,
                    self.diverged["round"],
                    _fmt(self.diverged["loss"]),
                )
            elif self._stop:
                status = "stopped"
            self._say(Kind.BYE)  # neighbours stop waiting for us at once (a diverged node's models are refused anyway)
            if (
                files and self.diverged is None
            ):  # the training state (a diverged node keeps its last finite one); the merged model below goes to node-<i>.npy
                self._save_checkpoint(files)
            if self.merger is not None and status == "finished":
                self.accuracy_before_merge = accuracy
                if files:
                    save_vector(files.premerge, self.flat.vector.numpy())
                accuracy = await self.run_merge()
        finally:
            receiver.cancel()
            try:
                await receiver
            except asyncio.CancelledError:
                pass
            if writer:
                writer.close()
            if self.metrics_server:
                self.metrics_server.stop()
            await self.transport.close()

        completed = kept + (ran if cfg.training.mode != "async" else self.round - start)
        result = NodeResult(
            int(self.id),
            status,
            completed,
            accuracy,
            model_hash(self.flat.vector),
            self.accuracy_before_merge,
            self.merge_outcome.members if self.merge_outcome else None,
            self.round - completed,
            self.diverged["round"] if self.diverged is not None else None,
        )
        if files:
            save_vector(files.model, self.flat.vector.numpy())
            write_json(files.summary, self._summary(result))  # last: its presence means the other files are whole
        return result

    # -------------------------------------------------------------------------------------------
    # checkpoints, crash and rejoin

    def _finite(self) -> bool:
        """Whether the model is still finite, checked after the local steps and at the end of every sync round: a
        diverged node must stop (:class:`Diverged`), not send models its neighbours refuse while they wait out the
        round timeout for it, round after round."""
        return all_finite(self.flat.vector)

    def _save_checkpoint(self, files: NodeFiles) -> None:
        state = checkpoint.Checkpoint(self.flat.vector.numpy(), self.round, self.flat.layout.fingerprint, self.trainer.state())
        checkpoint.save(files.checkpoint, state)
        self._checkpointed_at = time.monotonic()
        self.checkpoints_written += 1

    def _restore(self) -> int:
        """Load the plan's checkpoint, if any, into the model; returns the round to start from."""
        saved = self.plan.resume
        if saved is None:
            return 0
        self.flat.vector.copy_(torch.from_numpy(np.ascontiguousarray(saved.vector, dtype=np.float32)))
        try:
            self.trainer.load_state(saved.extras)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"node {self.id}: its checkpoint's training state does not fit: {exc}") from None
        start = min(saved.round, self.cfg.training.rounds)
        self.round = start
        if self.cfg.training.mode == "sync":
            self.inbox.advance(start, until=self.schedule.horizon(self.id, start, self.cfg.transport.max_rounds_ahead))
        log.info("node %s: resuming from its checkpoint of round %d", self.id, saved.round)
        return start

    def _rejoin_round(self, start: int) -> int:
        """After a resume: the round to continue at — the run's round if we are far behind.

        The run's round is the one ``gossip launch --resume`` agreed on (the latest checkpoint of the
        run, ``plan.join_round``) or, for a node restarted alone, the lowest round its live neighbours
        greeted us from (a welcome carries the round its sender is in; the lowest, so that one forged
        welcome cannot move us). Inside our inbox window (``max_rounds_ahead``) the node catches up in
        place: a few rounds alone, and the record stays contiguous (a whole-run resume, where every
        node restarts from about the same round); beyond it, replaying would leave our models stale
        for neighbours that moved on, so the node skips to that round (as :meth:`_catch_up` does).
        """
        if self.plan.resume is None:
            return start
        current = max(self.plan.join_round or start, self.liveness.ahead(self.inbox.gone) or start)
        joined = min(current, self.cfg.training.rounds) if self._far_behind(start, current) else start
        self.resumed = {"checkpoint_round": self.plan.resume.round, "joined_round": joined}
        if joined != start:
            log.warning(
                "node %s: the run is at round %d, %d rounds past our checkpoint: skipping to round %d",
                self.id,
                current,
                current - start,
                joined,
            )
            self._skip_to(joined)
        return joined

    def _catch_up(self, t: int) -> int:
        """Before round ``t``: the round to run — a later one when every live neighbour is past our inbox window.

        A node that was paused (SIGSTOP, a long GC, a swapped-out host) or fell behind finds its
        neighbours' models refused as too far ahead; replaying the rounds in between would leave it
        behind for good, its models stale for everyone. It skips, like a resumed node, to the lowest
        round its live neighbours (not down, not gone) have shown, so one neighbour's claim alone —
        a forged one included — never moves a node whose other neighbours are at its round.
        """
        target = self.liveness.ahead(self.inbox.gone)
        if target is None or not self._far_behind(t, target):
            return t
        target = min(target, self.cfg.training.rounds)
        log.warning(
            "node %s: every live neighbour is at round %d or later, %d rounds ahead of us: skipping to round %d",
            self.id,
            target,
            target - t,
            target,
        )
        self._skipped = {"from_round": t, "joined_round": target}
        self._skip_to(target)
        return target

    def _far_behind(self, t: int, target: int) -> bool:
        """Is ``target`` beyond the inbox window of round ``t`` — further ahead than the schedule lets a neighbour be?"""
        return target > self.schedule.horizon(self.id, t, self.cfg.transport.max_rounds_ahead)

    def _skip_to(self, r: int) -> None:
        self.round = r
        self.metrics.round.set(r)
        if self.choco is not None:  # neighbours missed our deltas of the rounds we skip: send in full
            self.choco.resync()

    # -------------------------------------------------------------------------------------------
    # start-up

    async def _handshake(self) -> None:
        """Say hello until every neighbour has answered with a welcome, or the deadline passes.

        A welcome is the proof we need: it answers a hello that left through *our* DEALER and came
        back through *theirs*, so both directions of the link are up before round 0 (with
        ``IMMEDIATE=1`` a model sent on a link that is not up yet would be dropped).
        """
        deadline = time.monotonic() + self.cfg.transport.startup_timeout_s
        pause = 0.05
        first_welcome: float | None = None
        while not self._stop:
            missing = [j for j in self.neighbours if j not in self._welcomed]
            if not missing:
                return
            if self._welcomed and first_welcome is None:
                first_welcome = time.monotonic()
            # A resumed node joins a running network: a neighbour may be dead or done. One welcome plus
            # a round timeout of grace is enough; the round loop copes with absent neighbours.
            if (
                self.plan.resume is not None
                and first_welcome is not None
                and time.monotonic() - first_welcome > self.cfg.transport.round_timeout_s
            ):
                log.warning("node %s: rejoining without neighbour(s) %s (no welcome)", self.id, ", ".join(map(str, missing)))
                return
            if time.monotonic() > deadline:
                who = ", ".join(f"{j} ({self.cfg.transport.address_of(j)})" for j in missing)
                raise PeerUnreachable(
                    list(map(int, missing)),
                    f"node {self.id}: no answer from neighbour(s) {who} within {self.cfg.transport.startup_timeout_s:g} s "
                    f"(transport.startup_timeout_s); are they running, and do those names resolve from here?",
                )
            for j in missing:
                self._say_hello(j)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    # -------------------------------------------------------------------------------------------
    # one round

    async def run_round(self, t: int) -> dict[str, Any]:
        """Round ``t``: train, exchange, mix, evaluate; returns the round's JSONL record."""
        cfg = self.cfg
        t_start = time.perf_counter()
        cpu_start = time.thread_time()  # this thread: ZeroMQ's I/O thread works alongside, counted in cpu_clock_s
        self.round = t
        self.metrics.round.set(t)
        self.round_plan = self.schedule.exchange(self.id, t)
        horizon = self.schedule.horizon(self.id, t, cfg.transport.max_rounds_ahead)
        self.inbox.advance(t, until=horizon)
        self._take_ahead()
        self._late_wait_s = None
        bytes_out_0 = self._bytes_out

        step = self.train()
        if not self._finite():  # leave before sending models every neighbour refuses (and waits out the round timeout for)
            raise Diverged(t, step.loss)
        await self.straggle()
        t_trained = time.perf_counter()
        cpu_trained = time.thread_time()
        if self.round_plan.communicates:
            got, timing = await self.exchange(t, step.loss)
        else:  # a local-only round: nothing to send, nobody to wait for
            got, timing = {}, {"encode_s": 0.0, "send_s": 0.0, "wait_s": 0.0}
            self.metrics.local_only_rounds.inc()
            await asyncio.sleep(0)  # still serve the event loop (receive task, SIGTERM) once a round
        t_exchanged = time.perf_counter()
        received = {j: m.payload for j, m in got.items() if m.payload is not None}
        missing = [int(j) for j in self.round_plan.expect_from if j not in received]
        for j in received:
            self.metrics.arrived(j, t)
        for j in missing:
            self.metrics.missed(j)
        for event in self.liveness.observe(t, received, missing):
            if event.state == "down":
                log.warning("node %s: neighbour %s missed %d rounds in a row: down? (round %d)", self.id, event.peer, event.missed, t)
            else:
                log.warning("node %s: neighbour %s is back in round %d after %d missed rounds", self.id, event.peer, t, event.missed)
        self._probe_down()
        distance = self.choco.mix(self.flat.vector, got, self.weights) if self.choco is not None else self.mix(received)
        t_mixed = time.perf_counter()

        evaluate = (t + 1) % cfg.training.eval_every == 0 or t == cfg.training.rounds - 1
        evaluation = self.trainer.evaluate() if evaluate else None
        t_end = time.perf_counter()
        cpu_end = time.thread_time()

        self.metrics.rounds.inc()
        self.metrics.round_duration.observe(t_end - t_start)
        if self.round_plan.communicates:
            self.liveness.round_took(t_end - t_start)
        self.metrics.consensus_distance.set(distance)
        self.metrics.peers_alive.set(len(received))
        self.observe(step, evaluation)
        self.round = t + 1
        return {
            **self.record_head(t, step, evaluation),
            "consensus_distance": distance,
            "comm": self.round_plan.kind,
            "arrived": len(received),
            "missing": missing,
            "bytes_sent": self._bytes_out - bytes_out_0,
            "bytes_received": sum(m.nbytes for m in got.values()),  # the models mixed this round
            "rejected": sum(self._rejects.values()),
            "link_dropped": self.transport.dropped,  # cumulative messages the link emulation lost
            # measured with the evaluation (eval_every): four passes over the vector, 1 ms a round at 1M
            # parameters; the variance rule computes it anyway and records it every round
            "layer_var": self.layer_record() if evaluate or self._layer_var is not None else None,
            "round_s": t_end - t_start,
            "train_s": t_trained - t_start,
            "encode_s": timing["encode_s"],
            "send_s": timing["send_s"],
            "wait_s": timing["wait_s"],
            "late_wait_s": self._late_wait_s,  # how long the round waited for neighbours that missed their last round
            "aggregate_s": t_mixed - t_exchanged,
            "eval_s": t_end - t_mixed,
            # CPU seconds of the round's thread and of its local steps: on a machine with fewer cores
            # than nodes, wall times include waiting for the CPU; CPU times show what the round costs.
            "cpu_s": cpu_end - cpu_start,
            "train_cpu_s": cpu_trained - cpu_start,
            # the process's CPU clock (last, after layer_record): differences between two records are
            # the whole cost of the rounds between them, bookkeeping and the receive loop included
            "cpu_clock_s": time.process_time(),
        }

    def observe(self, step: StepResult | None, evaluation: Evaluation | None) -> None:
        """Report a round's training loss and an evaluation (when there was one) to the metrics."""
        if step is not None and math.isfinite(step.loss):
            self.metrics.train_loss.set(step.loss)
        if evaluation is not None:
            self.metrics.test_accuracy.set(evaluation.accuracy)
            self.metrics.test_loss.set(evaluation.loss)

    def record_head(self, t: int, step: StepResult, evaluation: Evaluation | None) -> dict[str, Any]:
        """The fields every per-round JSONL record starts with, sync or async."""
        return {
            "node": int(self.id),
            "round": t,
            "time": time.time(),
            "loss": step.loss,
            "accuracy": evaluation.accuracy if evaluation else None,
            "test_loss": evaluation.loss if evaluation else None,
        }

    def train(self) -> StepResult:
        """The local steps of this round."""
        step = self.trainer.steps(self.cfg.training.local_steps)
        for s in step.step_seconds:
            self.metrics.train_step.observe(s)
        return step

    async def straggle(self) -> None:
        """A slow node ([faults] slow_nodes) takes ``step_delay_s`` longer per local step; it keeps receiving meanwhile."""
        if self._step_delay_s:
            await asyncio.sleep(self._step_delay_s * self.cfg.training.local_steps)

    async def exchange(self, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]:
        """Send our model to the round's peers (every neighbour by default), then collect the models
        the schedule says will arrive, until the round timeout."""
        t0 = time.perf_counter()
        tracker = None
        if self.choco is not None:  # a top-k delta or a dense resync of our public copy, in fresh buffers
            out = self.choco.outgoing(self.flat.vector)
            frames = encode(
                out.kind,
                src=self.id,
                round=t,
                run_id=self.run_id,
                fingerprint=self.flat.layout.fingerprint,
                payload=out.values,
                indices=out.indices,
                numel=self.flat.layout.numel,
                info={"loss": loss} if math.isfinite(loss) else None,
            )
        else:
            snapshot = self.snapshots.snapshot(self.flat.vector) if self._send_path == "snapshot" else None
            payload: torch.Tensor | memoryview
            if snapshot is not None:  # the one copy the socket needs, into a reused buffer
                payload = snapshot
            elif self._send_path == "narrowed":  # encode makes the float16/bfloat16/int8 copy
                payload = self.flat.vector
            else:  # the live vector's bytes, viewed once: copied by the socket below 1 MiB, else tracked zero-copy
                payload = self.flat.wire_bytes
            frames = encode(
                Kind.MODEL,
                src=self.id,
                round=t,
                run_id=self.run_id,
                fingerprint=self.flat.layout.fingerprint,
                payload=payload,
                dtype=self.cfg.transport.wire_dtype,
                info={"loss": loss} if math.isfinite(loss) else None,
            )
            if self._send_path == "zero-copy":
                frames, tracker = track_live(frames)
            elif snapshot is not None:
                frames = self.snapshots.track(snapshot, frames)
            del payload, snapshot
        t1 = time.perf_counter()
        unsent = []
        for j in self.round_plan.send_to:
            if not self.send(j, frames):
                unsent.append(j)  # no connection, or its queue is full: it is gone or not reading
                if self.choco is not None:
                    self.choco.resync()  # j's copy of our public copy is now behind
        del frames  # the tracked frame must die for its tracker to finish
        t2 = time.perf_counter()
        # Who is waited for how long (gossip.node.liveness): neighbours in good standing until the round timeout,
        # late ones (missed their last round, or our model could not be handed to them) for the late wait,
        # the down and those past this round not at all, nor neighbours that said bye. Everything that
        # arrived by then is mixed either way.
        patient, late = self.liveness.waits(t, [j for j in self.round_plan.expect_from if j not in self.inbox.gone])
        if unsent:
            late += [j for j in patient if j in unsent]
            patient = [j for j in patient if j not in unsent]
        now = time.monotonic()
        deadline = now + self.cfg.transport.round_timeout_s
        if late:
            self._late_wait_s = self.liveness.late_wait_s(self.cfg.transport.round_timeout_s)
            await self.inbox.collect(t, [*patient, *late], min(deadline, now + self._late_wait_s))
        got = await self.inbox.collect(t, patient, deadline)
        if tracker is not None:  # mixing writes the vector next: ZeroMQ must be done reading it
            transport = self.transport
            grace = max(deadline, time.monotonic() + min(1.0, self.cfg.transport.round_timeout_s))
            send_to = self.round_plan.send_to
            if not await until_released(tracker, grace, lambda: transport.drop_queued(send_to)):
                log.warning("node %s: ZeroMQ still held our round-%d model after dropping what was queued", self.id, t)
        t3 = time.perf_counter()
        self.metrics.wait.observe(t3 - t2)
        return got, {"encode_s": t1 - t0, "send_s": t2 - t1, "wait_s": t3 - t2}

    def mix(self, received: Mapping[NodeId, torch.Tensor]) -> float:
        """Aggregate in place; returns the consensus distance to the neighbourhood average (before mixing).

        The weights are the round plan's (1/2 for a pull or a one-peer round, push-sum masses in async
        push-sum), else the topology's mixing weights.
        """
        vector = self.flat.vector
        source = self.round_plan.weights if self.round_plan.weights is not None else self.weights
        weights = {j: source[j] for j in received}
        if self._in_place is not None:  # the common case (D-SGD), in place: no fresh buffers
            if self._mix_before is None:
                self._mix_before = torch.empty_like(vector)
            return self._in_place.mix_(vector, received, weights, self._mix_before)
        neighbourhood = weighted_average(vector, received, weights)
        distance = float(torch.linalg.vector_norm(vector - neighbourhood))
        vector.copy_(self.aggregator.aggregate(vector, received, weights))
        return distance

    def _saw_layers(self, variances: LayerVariance) -> None:
        """The rule's per-layer variances of this mix (the variance correction), for the round's record."""
        self._layer_var = (variances.before, variances.after, variances.target)

    # -------------------------------------------------------------------------------------------
    # async gossip (the loop lives in gossip.node.asyncgossip)

    async def run_async(self, writer: RecordWriter | None) -> float:
        """Gossip learning instead of rounds (see :class:`~gossip.node.asyncgossip.AsyncGossip`); returns the final accuracy."""
        return await self.async_gossip.run(writer)

    # -------------------------------------------------------------------------------------------
    # the single global merge

    async def run_merge(self) -> float:
        """Replace the model by the exact average of every live node's (``gossip.node.merge``); returns its accuracy."""
        if self.merger is None:
            raise RuntimeError("merge not enabled")
        layout = self.flat.layout
        stats = layout.of_kind("norm_stat")
        mask = stat_mask_of(stats, layout.numel) if stats else None
        outcome = await self.merger.run(self.flat.vector, self._calibrate if stats else None, mask)
        self.flat.vector.copy_(outcome.vector)
        self.merge_outcome = outcome
        evaluation = self.trainer.evaluate()
        self.metrics.merged(len(outcome.members), outcome.seconds)
        self.observe(None, evaluation)
        log.info(
            "node %s: merged %d models %s in %.2f s (views agree: %s), accuracy %.4f -> %.4f, model %s",
            self.id,
            len(outcome.members),
            list(outcome.members),
            outcome.seconds,
            outcome.views_agree,
            self.accuracy_before_merge if self.accuracy_before_merge is not None else float("nan"),
            evaluation.accuracy,
            model_hash(self.flat.vector),
        )
        return evaluation.accuracy

    def _calibrate(self, merged: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The merged model with BatchNorm statistics re-estimated on this node's first local batches."""
        self.flat.vector.copy_(merged)
        used = recalibrate_norm_stats(self.flat.module, self.trainer.x, self.cfg.data.batch_size, self.cfg.merge.calibration_batches)
        return self.flat.vector.clone(), used

    # -------------------------------------------------------------------------------------------
    # records

    def write_record(self, writer: RecordWriter | None, record: dict[str, Any]) -> None:
        """Append a record to the node's JSONL and, when one is due (gossip.node.roundlog), log a line a person reads."""
        if writer:
            writer.write(record)
        if log.isEnabledFor(logging.INFO) and self._round_lines.due(record):
            _log_round(record)

    def _log_last_round(self) -> None:
        """Log the last round's line if it was held back: the log ends where the run ended."""
        held = self._round_lines.take_held()
        if held is not None and log.isEnabledFor(logging.INFO):
            _log_round(held)

    def layer_record(self) -> dict[str, list[float]]:
        """Per-layer weight variance of this round, compact (names are in the node's summary), and to metrics.

        ``before``: the averaged model before the variance correction; ``after``: the model that leaves
        the aggregation (equal without the correction); ``target``: the correction's target.
        """
        if self._layer_var is None:
            v = layer_variance(self.flat.vector, self.layers)
            self._layer_var = (v, v, None)
        before, after, target = self._layer_var
        self._layer_var = None
        self.metrics.layer_variance(self.layers.names, before.tolist(), after.tolist())
        out = {"before": _compact(before), "after": _compact(after)}
        if target is not None:
            out["target"] = _compact(target)
        return out

    # -------------------------------------------------------------------------------------------
    # network

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        """Hand a message to the transport, counting it; False if the peer is down or its queue full."""
        nbytes = sum(len(f) for f in frames)
        ok = self.transport.send(peer, frames)
        if ok:
            self._bytes_out += nbytes
        self.metrics.sent(peer, nbytes, ok)
        return ok

    _send = send  # the name of the first node loop; kept for subclasses that call it

    def _say(self, kind: Kind) -> None:
        for j in self.neighbours:
            self.send(j, encode(kind, src=self.id, round=self.round, run_id=self.run_id))

    def _say_hello(self, peer: NodeId) -> None:
        """Greet ``peer``: its welcome is expected for a while (an unasked welcome is refused)."""
        self._hello_at[peer] = time.monotonic()
        self.send(peer, encode(Kind.HELLO, src=self.id, round=self.round, run_id=self.run_id))

    def _probe_down(self) -> None:
        """Say hello to the neighbours that are down and silent, once every ``PROBE_EVERY_S``.

        A neighbour that is alive but whose models do not reach us (its link to us was taken over by
        an impostor without CURVE: the ROUTER handed the identity to the impostor, and the real
        neighbour's sends vanish) re-opens its link when greeted (see :meth:`_greeted`); a dead one
        costs a send that fails at once. One we still hear (a straggler) is left alone.
        """
        now = time.monotonic()
        for j in self.liveness.silent(self.round):
            peer = NodeId(j)
            if now - self._hello_at.get(peer, -math.inf) >= PROBE_EVERY_S:
                self._say_hello(peer)

    def _greeted(self, peer: NodeId) -> None:
        """A neighbour said hello while we run: it restarted, or it stopped hearing us. Re-open our link to it.

        Our DEALER may look connected and still deliver nothing (an impostor took the identity over at
        the peer's ROUTER, or the peer restarted): a fresh one connects again and takes the identity
        back. At most once every ``REOPEN_EVERY_S``, so a hello repeated during a handshake does not
        keep tearing the fresh link down; the welcome sent on a link still connecting may be lost, and
        the peer's next hello gets it.
        """
        now = time.monotonic()
        if now - self._reopened_at.get(peer, -math.inf) >= REOPEN_EVERY_S:
            self._reopened_at[peer] = now
            self.transport.drop_queued([peer])

    def _take_ahead(self) -> None:
        """Move the models that came too early for our window into the inbox once the window reaches them."""
        if not self._ahead:
            return
        lo, hi = self.inbox.window()
        for j, message in list(self._ahead.items()):
            if message.round < lo:
                del self._ahead[j]
            elif message.round <= hi:
                del self._ahead[j]
                if self.schedule.expects(self.id, message.src, message.round):
                    self.inbox.put(message)

    def _claim_ok(self, message: Message) -> bool:
        """A hello's or welcome's round must lie inside the run; refused (and counted) otherwise."""
        if 0 <= message.round <= self.cfg.training.rounds:
            return True
        self.reject(
            RejectReason.FUTURE_ROUND if message.round > 0 else RejectReason.STALE_ROUND,
            f"{message.kind} round {message.round}",
            message.src,
        )
        return False

    async def _receive_loop(self) -> None:
        """Validate everything that arrives; a bad message is counted and dropped, never raised."""
        while True:
            received = await self.transport.recv()
            if not self._limiter.allow(received.sender):
                self._reject(RejectReason.RATE_LIMITED, "", received.sender)
                continue
            try:
                message = decode(received.frames, self.expect, received.sender)
            except WireError as exc:
                self.reject(exc.reason, exc.detail, received.sender)
                continue
            if self._deliver(message):  # counted as received only when the node kept it, else under its refusal
                self._bytes_in += received.nbytes
                self.metrics.received(message.src, received.nbytes, message.round)

    def _deliver(self, message: Message) -> bool:
        """Act on a valid message; False when the node refused it after all (counted under the reason)."""
        if message.kind is Kind.HELLO:
            if not self._claim_ok(message):
                return False
            if self.ready:  # a neighbour (re)starting while we run: it learns our round from the welcome
                log.info("node %s: neighbour %s said hello in our round %d (its round %d)", self.id, message.src, self.round, message.round)
                self._greeted(message.src)
            self.inbox.mark_back(message.src)
            self.liveness.heard(message.src, message.round, self.round)
            if self.choco is not None:  # a restarted neighbour lost its copy of ours
                self.choco.resync()
            self.send(message.src, encode(Kind.WELCOME, src=self.id, round=self.round, run_id=self.run_id))
        elif message.kind is Kind.WELCOME:
            asked = self._hello_at.get(message.src)
            if asked is None or time.monotonic() - asked > max(WELCOME_WINDOW_S, 2 * self.cfg.transport.round_timeout_s):
                self.reject(RejectReason.UNEXPECTED, "welcome without our hello", message.src)
                return False
            if not self._claim_ok(message):
                return False
            self._welcomed.add(message.src)
            self.liveness.heard(message.src, message.round, self.round)
        elif message.kind is Kind.BYE:  # until its next model: one that says bye and keeps sending is back
            self.inbox.mark_gone(message.src)
        elif message.kind in MERGE_KINDS:
            if self.merger is not None:
                self.merger.deliver(message)
        elif message.kind is Kind.DELTA and self.choco is None:
            self.reject(RejectReason.UNEXPECTED, "delta without compression.method = 'topk'", message.src)
            return False
        elif message.kind in (Kind.MODEL, Kind.DELTA):
            if self.cfg.training.mode == "async":
                self.async_gossip.absorb(message)
                return True
            # a valid model of any round shows where its sender is, and that it is still there
            self.liveness.heard(message.src, message.round, self.round)
            if message.src in self.inbox.gone:
                self.inbox.mark_back(message.src)
            if message.round > self.inbox.current_round:
                self.inbox.mark_passed(message.src)
            lo, hi = self.inbox.window()
            if message.round < lo:
                self.reject(RejectReason.STALE_ROUND, f"round {message.round} < {lo}", message.src)
                return False
            if message.round > hi:
                self._ahead[message.src] = message  # the latest one: if we skip ahead, it may be the round we land in
                self.reject(RejectReason.FUTURE_ROUND, f"round {message.round} > {hi}", message.src)
                return False
            if not self.schedule.expects(self.id, message.src, message.round):
                self.reject(RejectReason.UNEXPECTED, f"round {message.round}", message.src)
                return False
            self.inbox.put(message)
        return True

    def on_unauthenticated(self) -> None:
        """The transport refused a CURVE handshake from a key that is not a neighbour's."""
        self.reject(RejectReason.UNAUTHENTICATED, "unknown CURVE key", None)

    def reject(self, reason: RejectReason, detail: str, sender: int | None) -> None:
        """Count a dropped message under its reason (logged once per reason)."""
        self.metrics.rejected(reason)
        if self._rejects[reason.value] == 0:  # log once per reason; the counter has the rest
            log.warning("node %s: rejected a message from %s: %s %s", self.id, sender, reason.value, detail)
        self._rejects[reason.value] += 1

    _reject = reject

    # -------------------------------------------------------------------------------------------

    def _summary(self, result: NodeResult) -> dict[str, Any]:
        return {
            "node": result.node_id,
            "status": result.status,
            "rounds_completed": result.rounds_completed,
            "rounds_skipped": result.rounds_skipped,
            "diverged": self.diverged,  # {"round", "loss"}: the round after which the model was no longer finite
            "accuracy": result.accuracy,
            "model_hash": result.model_hash,
            "bytes_sent": self._bytes_out,
            "bytes_received": self._bytes_in,
            "rejected": dict(self._rejects),
            "neighbours": [int(j) for j in self.neighbours],
            "parameters": self.flat.layout.numel,
            "send_buffers_allocated": self.snapshots.allocations,  # the snapshot pool: 0 below 32 MiB (clones), else a few, not one per round
            "mode": self.cfg.training.mode,
            "variance_layers": list(self.layers.names),
            "accuracy_before_merge": result.accuracy_before_merge,
            "merge": _merge_summary(self.merge_outcome, result.model_hash),
            "peers_down": sorted(self.liveness.down),  # neighbours missing at the end (DOWN_AFTER rounds in a row)
            "peers_were_down": sorted(self.liveness.ever_down),
            "resumed": self.resumed,
            "link_dropped": self.transport.dropped,
            "checkpoints_written": self.checkpoints_written,
            "send_path": self._send_path,
            **({"mass": self.async_gossip.mass} if self.cfg.training.push_sum else {}),
            **({"choco_dense_rounds": self.choco.dense_sent} if self.choco is not None else {}),  # rounds sent in full (resyncs)
        }

    @property
    def stopping(self) -> bool:
        """A stop was requested (SIGTERM, Ctrl-C)."""
        return self._stop

    @property
    def bytes_sent(self) -> int:
        """Bytes handed to the transport so far."""
        return self._bytes_out

    @property
    def rejected(self) -> Mapping[str, int]:
        """Messages rejected so far, by reason."""
        return dict(self._rejects)


def _merge_summary(outcome: MergeOutcome | None, final_hash: str) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {
        "members": list(outcome.members),
        "heard": list(outcome.heard),
        "views_agree": outcome.views_agree,
        "hash": final_hash,
        "calibration_batches": outcome.calibration_batches,
        "seconds": outcome.seconds,
        **outcome.phase_seconds,
    }


def _compact(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


# the per-round log line: what `docker logs` / `kubectl logs` readers look for; the JSONL record has the rest
_LOGGED = (
    "node",
    "round",
    "loss",
    "accuracy",
    "consensus_distance",
    "comm",
    "pushed_to",
    "arrived",
    "missing",
    "rejected",
    "mass",
    "round_s",
)


def _log_round(record: Mapping[str, Any]) -> None:
    log.info("%s", " ".join(f"{k}={_fmt(record[k])}" for k in _LOGGED if record.get(k) not in (None, [])))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
