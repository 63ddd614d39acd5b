"""The node: one vertex of the graph, composed of its parts, and its life from start to summary.

This module wires the pieces together and does nothing else. The parts, each with one job:
:mod:`~gossip.node.core` (the state they share), :mod:`~gossip.node.outbox` (how messages leave),
:mod:`~gossip.node.receiver` (validate and dispatch what arrives), :mod:`~gossip.node.peers` (handshake,
hellos, rejoin and catch-up), :mod:`~gossip.node.mixer` (aggregation), :mod:`~gossip.node.records`
(records, log lines, summary), and two drivers over the same core: :mod:`~gossip.node.sync` (the rounds)
and :mod:`~gossip.node.asyncgossip` (``[training] mode = "async"``: push to one random neighbour every
``period_s``, merge on receipt). The math is in ``gossip.algorithms``, validation in ``gossip.net.wire``,
sockets in ``gossip.net``. :func:`~gossip.node.plan.plan_node` does the reading (config, topology, data);
:class:`Node`'s constructor does no I/O; work starts in :meth:`Node.run`.

Which neighbours a node sends to and waits for in round *t* is the schedule's (``gossip.topology.schedule``):
every neighbour every round by default; a round of a sparser schedule in which the node neither sends
nor expects anything is local training only (``"comm": "none"`` in its record). With ``[merge] enabled``
every live node ends with the exact average of all live nodes' models (``gossip.node.merge``).
``[compression] method = "topk"`` replaces the round's model by a CHOCO-gossip top-k delta and its mix by
CHOCO's (``gossip.node.choco``).

Determinism: batches are seeded per node and aggregation sums in sorted sender order, so as long as
every model arrives within the timeout, two runs with the same config give bit-identical models
whatever the arrival order. A timeout changes the mix; it is recorded (``missing`` in the round's
record and ``gossip_peer_missed_rounds_total``), so a divergence between runs is always visible.

Crashes: a node checkpoints every ``checkpoint_every`` rounds, at least ``checkpoint_interval_s`` apart.
Started with a checkpoint (``gossip node --resume``) it restores it, greets its neighbours, learns their round from their
welcomes (or takes the round ``gossip launch --resume`` agreed on) and, if that is beyond its inbox window,
skips to it instead of replaying rounds whose models its neighbours no longer want
(:meth:`Peers.rejoin_round <gossip.node.peers.Peers.rejoin_round>`); a running node that falls that far behind
skips the same way. Neighbours need no special case: they wait for a neighbour that stopped sending once for
the round timeout, then briefly, then not at all until its models arrive again (``gossip.node.liveness``).
``[links]`` shapes the node's out-links (``gossip.net.linkemu``) and ``[faults]`` can make it a straggler, for experiments.

Divergence: a sync node whose model is no longer finite after its local steps (or after its mix) stops
there — status ``"diverged"``, its last finite checkpoint kept, a bye so its neighbours stop waiting
for it — instead of sending models every neighbour refuses, round after round (``gossip node`` exits 3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gossip.algorithms.merge import recalibrate_norm_stats, stat_mask_of
from gossip.errors import ConfigError, RejectReason
from gossip.ids import NodeId
from gossip.learn.flat import model_hash
from gossip.learn.trainer import StepResult
from gossip.net.transport import Transport
from gossip.net.wire import Kind, Message
from gossip.node import checkpoint
from gossip.node.asyncgossip import AsyncGossip
from gossip.node.core import NodeCore
from gossip.node.merge import GlobalMerge, MergeOutcome
from gossip.node.mixer import Mixer
from gossip.node.outbox import Outbox, SendPath
from gossip.node.peers import Peers
from gossip.node.plan import NodePlan
from gossip.node.receiver import Receiver
from gossip.node.records import NodeResult, Recorder, fmt, node_summary
from gossip.node.sync import SyncRounds
from gossip.ops.metrics import NodeMetrics
from gossip.results.rundir import NodeFiles, RecordWriter, keep_records_before, save_vector
from gossip.results.summary import NodeSummary
from gossip.topology.schedule import Exchange

__all__ = ["Node"]

log = logging.getLogger("gossip.node")  # the name log readers grep for (gossip.node node=3 round=...)


class Node:
    """One gossip node. ``await node.run()`` runs every round and returns a :class:`NodeResult`.

    The round is split into overridable steps — :meth:`train`, :meth:`exchange`, :meth:`mix`, and
    :meth:`run_round` itself — so that other behaviours (a Byzantine node) change one step, not the loop.
    """

    def __init__(self, plan: NodePlan, transport: Transport, *, metrics: NodeMetrics | None = None) -> None:
        self.core = core = NodeCore(plan, transport, metrics)
        cfg = self.cfg = core.cfg
        self.id = core.id
        self.plan = core.plan  # this node's shard only (see NodeCore)
        self.transport = core.transport
        self.neighbours = core.neighbours
        self.weights = core.weights
        self.flat = core.flat
        self.trainer = core.trainer
        self.metrics = core.metrics
        self.inbox = core.inbox
        self.schedule = core.schedule
        self.liveness = core.liveness
        self.choco = core.choco
        self.snapshots = core.snapshots
        self.device = core.device
        self.outbox = Outbox(core)
        self.peers = Peers(core, self.outbox)
        self.mixer = Mixer(cfg, core.flat, core.metrics, core.progress)
        self.layers = self.mixer.layers
        self.recorder = Recorder(int(core.id), core.metrics, cfg.run.log_interval_s)
        self.merger = _global_merge(core, plan, self.outbox)
        self.receiver = Receiver(core, self.outbox, self.peers, self.merger)
        self.rounds = SyncRounds(core, self.outbox, self.receiver, self.peers, self.mixer, self.recorder)
        self.async_gossip = AsyncGossip(core, self.outbox, self.receiver, self.mixer, self.recorder, self.train)
        if cfg.training.mode == "async":
            self.receiver.absorb = self.async_gossip.absorb
        self.merge_outcome: MergeOutcome | None = None
        self.accuracy_before_merge: float | None = None
        self.checkpoints = checkpoint.Checkpointer(core)
        _check_resume(core)

    # -------------------------------------------------------------------------------------------
    # the overridable steps of a round (gossip.node.sync)

    def train(self) -> StepResult:
        """The local steps of this round."""
        return self.core.train()

    async def exchange(self, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]:
        """Send our model to the round's peers, then collect the models the schedule says will arrive."""
        return await self.rounds.exchange(t, loss)

    def mix(self, received: Mapping[NodeId, torch.Tensor]) -> float:
        """Aggregate in place; returns the consensus distance to the neighbourhood average (before mixing)."""
        return self.rounds.mix(received)

    async def run_round(self, t: int) -> dict[str, Any]:
        """Round ``t``: train, exchange, mix, evaluate; returns the round's JSONL record."""
        return await self.rounds.run_round(self, t)

    # -------------------------------------------------------------------------------------------
    # lifecycle

    def request_stop(self) -> None:
        """Finish the current phase quickly and leave (SIGTERM, Ctrl-C)."""
        self.core.stopping = True
        self.inbox.stop()
        if self.merger is not None:
            self.merger.stop()

    async def run(self) -> NodeResult:
        cfg = self.cfg
        files = NodeFiles(self.plan.run_dir, self.id) if self.plan.run_dir else None
        start = self.checkpoints.restore()
        kept = 0  # records of earlier lives of this node, before its checkpoint
        if files and self.plan.resume is not None:
            kept = keep_records_before(files.records, start)  # later records are replayed (or skipped), torn ones cut
        writer = RecordWriter(files.records, truncate=self.plan.resume is None) if files else None

        await self.transport.start()
        if self.merger is not None:  # the merge talks to every node: connect now, so links are up by then
            for j in range(self.plan.topology.n):
                if j != self.id and NodeId(j) not in self.neighbours:
                    self.transport.connect(NodeId(j), cfg.transport.address_of(j))
        receiver = asyncio.create_task(self.receiver.loop(), name=f"recv-{self.id}")
        try:
            status, ran, accuracy = await self._work(start, files, writer)
        finally:
            receiver.cancel()
            try:
                await receiver
            except asyncio.CancelledError:
                pass
            if writer:
                writer.close()
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
            save_vector(files.model, self.flat.vector.cpu().numpy())
            self._summary(result).write(files.summary)  # last: its presence means the other files are whole
        return result

    async def _work(self, start: int, files: NodeFiles | None, writer: RecordWriter | None) -> tuple[str, int, float]:
        """Handshake, train (rounds or async gossip), say bye, checkpoint, merge: the node's status, the rounds
        this life ran (a record each; skipped rounds are not among them) and the final accuracy."""
        cfg = self.cfg
        status = "finished"
        ran = 0
        accuracy = float("nan")
        await self.peers.handshake()
        self.core.ready = True
        if cfg.training.mode == "async":
            accuracy = await self.async_gossip.run(writer)
        else:
            ran, accuracy = await self.rounds.run(self, start, writer, lambda t: self.checkpoints.due(files, t))
        self.recorder.log_last_round()
        if self.diverged is not None:
            status = "diverged"
            log.error(
                "node %s diverged at round %d (loss %s): its model is no longer finite; stopping",
                self.id,
                self.diverged["round"],
                fmt(self.diverged["loss"]),
            )
        elif self.stopping:
            status = "stopped"
        self.outbox.say(Kind.BYE)  # neighbours stop waiting for us at once (a diverged node's models are refused anyway)
        if (
            files and self.diverged is None
        ):  # the training state (a diverged node keeps its last finite one); the merged model goes to node-<i>.npy
            self.checkpoints.save(files)
        if self.merger is not None and status == "finished":
            self.accuracy_before_merge = accuracy
            if files:
                save_vector(files.premerge, self.flat.vector.cpu().numpy())
            accuracy = await self.run_merge()
        return status, ran, accuracy

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
        self.recorder.observe(None, evaluation)
        before = self.accuracy_before_merge if self.accuracy_before_merge is not None else float("nan")
        _log_merge(self.id, outcome, before, evaluation.accuracy, model_hash(self.flat.vector))
        return evaluation.accuracy

    def _calibrate(self, merged: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The merged model with BatchNorm statistics re-estimated on this node's first local batches."""
        self.flat.vector.copy_(merged)
        used = recalibrate_norm_stats(self.flat.module, self.trainer.x, self.cfg.data.batch_size, self.cfg.merge.calibration_batches)
        return self.flat.vector.clone(), used

    # -------------------------------------------------------------------------------------------
    # what the parts know, as the node's

    def _summary(self, result: NodeResult) -> NodeSummary:
        return node_summary(self, result)

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        """Hand a message to the transport, counting it; False if the peer is down or its queue full."""
        return self.outbox.send(peer, frames)

    def reject(self, reason: RejectReason, detail: str, sender: int | None) -> None:
        """Count a dropped message under its reason (logged once per reason)."""
        self.receiver.reject(reason, detail, sender)

    def on_unauthenticated(self) -> None:
        """The transport refused a CURVE handshake from a key that is not a neighbour's."""
        self.receiver.on_unauthenticated()

    @property
    def round(self) -> int:
        """The round the node is in (the next one to run, between rounds)."""
        return self.core.round

    @property
    def ready(self) -> bool:
        """Every neighbour answered the handshake (or it gave up on the missing): ``/readyz``."""
        return self.core.ready

    @property
    def stopping(self) -> bool:
        """A stop was requested (SIGTERM, Ctrl-C)."""
        return self.core.stopping

    @property
    def round_plan(self) -> Exchange:
        """The current round's :class:`~gossip.topology.schedule.Exchange` (whom to send to, whom to wait for, which weights)."""
        return self.rounds.round_plan

    @property
    def diverged(self) -> dict[str, Any] | None:
        """``{"round", "loss"}`` once the model is no longer finite."""
        return self.rounds.diverged

    @property
    def resumed(self) -> dict[str, int] | None:
        """``{"checkpoint_round", "joined_round"}`` after a resume."""
        return self.peers.resumed

    @property
    def send_path(self) -> SendPath:
        """How this node's round models leave (:class:`~gossip.node.outbox.SendPath`)."""
        return self.outbox.path

    @property
    def checkpoints_written(self) -> int:
        """Checkpoints this life of the node wrote."""
        return self.checkpoints.written

    @property
    def bytes_sent(self) -> int:
        """Bytes handed to the transport so far."""
        return self.outbox.bytes_out

    @property
    def bytes_received(self) -> int:
        """Bytes of the messages the node kept so far."""
        return self.receiver.bytes_in

    @property
    def rejected(self) -> Mapping[str, int]:
        """Messages rejected so far, by reason."""
        return dict(self.receiver.rejects)


def _global_merge(core: NodeCore, plan: NodePlan, outbox: Outbox) -> GlobalMerge | None:
    """The node's part in the single global merge, when ``[merge] enabled``."""
    if not core.cfg.merge.enabled:
        return None
    return GlobalMerge(
        core.id,
        plan.topology.n,
        run_id=core.run_id,
        fingerprint=core.flat.layout.fingerprint,
        epoch=core.cfg.training.rounds,
        cfg=core.cfg.merge,
        send=outbox.send,
    )


def _check_resume(core: NodeCore) -> None:
    """Refuse a checkpoint that belongs to another model: a different fingerprint or size."""
    resume = core.plan.resume
    if resume is not None and resume.fingerprint != core.flat.layout.fingerprint:
        raise ConfigError(f"node {core.id}: its checkpoint belongs to another model (fingerprint {resume.fingerprint.hex()})")
    if resume is not None and resume.vector.shape != (core.flat.layout.numel,):
        raise ConfigError(f"node {core.id}: its checkpoint holds {resume.vector.size} values, the model has {core.flat.layout.numel}")


def _log_merge(node: NodeId, outcome: MergeOutcome, before: float, after: float, model: str) -> None:
    log.info(
        "node %s: merged %d models %s in %.2f s (views agree: %s), accuracy %.4f -> %.4f, model %s",
        node,
        len(outcome.members),
        list(outcome.members),
        outcome.seconds,
        outcome.views_agree,
        before,
        after,
        model,
    )
