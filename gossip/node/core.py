"""What every part of a node shares: who it is, its config, model, trainer, metrics, inbox, and the round it is in.

Built once by :class:`~gossip.node.node.Node`; the send path, the receiver, the peers' rules, the mixer, the
records and both drivers (synchronous rounds, async gossip) read it, and only the drivers move its round.
The constructor does no I/O: the plan was read before (:func:`gossip.node.plan.plan_node`).
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import torch

from gossip.ids import NodeId
from gossip.learn.device import apply_determinism, gpu_memory
from gossip.learn.trainer import LocalTrainer, StepResult
from gossip.net.linkemu import emulate_links
from gossip.net.sendbuffers import SnapshotPool
from gossip.net.transport import Transport
from gossip.node.choco import ChocoGossip
from gossip.node.inbox import Inbox
from gossip.node.liveness import Liveness
from gossip.node.plan import NodePlan, build_flat_model, run_id_of
from gossip.ops.metrics import NodeMetrics
from gossip.seeds import batch_seed
from gossip.topology.schedule import Schedule

__all__ = ["NodeCore"]


class NodeCore:
    """The shared state of one node (see the module)."""

    def __init__(self, plan: NodePlan, transport: Transport, metrics: NodeMetrics | None) -> None:
        cfg = plan.cfg
        self.cfg = cfg
        self.id = plan.node_id
        # link emulation ([links], edge attributes) sits between the node and the real transport
        self.transport = emulate_links(transport, plan.node_id, plan.topology, cfg.links, seed=cfg.run.seed)
        self.neighbours: tuple[NodeId, ...] = tuple(NodeId(j) for j in plan.topology.neighbours(plan.node_id))
        row = plan.topology.mixing_weights(plan.node_id, cfg.topology.weights)
        self.weights: dict[NodeId, float] = {NodeId(j): float(w) for j, w in row.items() if j != plan.node_id}
        self.run_id = run_id_of(cfg)
        self.device = torch.device(plan.device)  # resolved in this process (plan_node); cpu unless [training] device says
        apply_determinism(cfg.training.deterministic, self.device)  # before anything reaches the device
        self.flat = build_flat_model(plan, plan.device)
        # Keep only this node's training samples: the trainer's tensors share their memory, and the rest of
        # the training set (N - 1 other shards) is freed once the caller lets go of its plan.
        # plan.dataset.x_train[plan.shard] is still this node's data.
        ds = plan.dataset
        x_mine, y_mine = np.ascontiguousarray(ds.x_train[plan.shard]), ds.y_train[plan.shard]
        # A node without data (an empty part of a split that allows it) trains on nothing and only mixes; the
        # Dataset value refuses an empty training set, so its plan keeps the dataset as it came.
        mine = dataclasses.replace(ds, x_train=x_mine, y_train=y_mine) if len(y_mine) else ds
        self.plan = plan = dataclasses.replace(plan, dataset=mine, shard=np.arange(len(y_mine)))
        self.trainer = LocalTrainer(
            self.flat.module,
            x_mine,
            y_mine,
            mine.x_test,
            mine.y_test,
            cfg.training,
            cfg.data.batch_size,
            seed=batch_seed(cfg.run.seed, int(self.id)),
            device=self.device,
        )
        self.metrics = metrics or NodeMetrics(plan.node_id, self.neighbours, cfg.aggregation.rule)
        self.metrics.rounds_planned.set(cfg.training.rounds)  # lets alerts tell a finished node from a stalled one
        if self.device.type != "cpu":
            self.metrics.on_gpu(str(self.device))
        # [compression] method = "topk": CHOCO-gossip replaces the model message and the mix (gossip.node.choco)
        self.choco = ChocoGossip(self.flat.vector, self.neighbours, cfg.compression) if cfg.compression.method == "topk" else None
        # on a GPU every send is one device-to-host copy into a reused pinned buffer, whatever its size
        self.snapshots = SnapshotPool() if self.device.type == "cpu" else SnapshotPool(min_bytes=0, pinned=True)
        self.inbox = Inbox(self.neighbours, cfg.transport.max_rounds_ahead)
        self.schedule = Schedule(cfg, plan.topology)
        self.inbox.advance(0, until=self.horizon(0))
        self.liveness = Liveness(self.neighbours)  # misses, late waits, and the round each neighbour last showed
        self.round = 0
        self.ready = False  # every neighbour answered (or the handshake gave up on the missing): /readyz
        self.stopping = False  # a stop was requested (SIGTERM, Ctrl-C)
        slow = int(self.id) in cfg.faults.slow_nodes
        self._step_delay_s = cfg.faults.step_delay_s if slow else 0.0

    def horizon(self, t: int) -> int:
        """The last round of round ``t``'s inbox window: how far ahead the schedule lets a neighbour be."""
        return self.schedule.horizon(self.id, t, self.cfg.transport.max_rounds_ahead)

    def progress(self) -> float:
        """How far the run is, t / T: the clock of rules with a schedule (BALANCE's λ(t))."""
        return self.round / self.cfg.training.rounds

    def train(self) -> StepResult:
        """The local steps of this round."""
        step = self.trainer.steps(self.cfg.training.local_steps)
        for s in step.step_seconds:
            self.metrics.train_step.observe(s)
        memory = gpu_memory(self.device)
        if memory is not None:
            self.metrics.gpu_memory(*memory)
        return step

    async def straggle(self) -> None:
        """A slow node ([faults] slow_nodes) takes ``step_delay_s`` longer per local step; it keeps receiving meanwhile."""
        if self._step_delay_s:
            await asyncio.sleep(self._step_delay_s * self.cfg.training.local_steps)
