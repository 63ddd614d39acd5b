"""A member of an open network (``[membership] enabled``): async gossip over links it chooses, while others come and go.

Started with ``gossip node --join tcp://HOST:PORT`` it asks that member in, takes ``degree`` neighbours from
what it learns (:mod:`gossip.topology.membership`), asks each for its model (``state_request``) and starts
from their average, so a newcomer does not start from scratch; without ``--join`` it is the first member and
waits for others to link to it. Then, like async gossip (:mod:`gossip.node.asyncgossip`): every ``period_s``
its local steps and a push to one neighbour drawn at random, and every model merged as it arrives — weight
1/2 (Ormándi et al.), or push-sum's weights from the masses, which stay exact on a graph that changes. Every
weight is the receiver's own arithmetic; a peer sends a model and its mass, never a weight.

Three tasks share the node: the receive loop (validate, then act), the membership clock (heartbeats,
shuffles, failure detection, link requests, every ``TICK_S``) and the training loop. A stop (SIGTERM, the
last push) says ``leave`` to every neighbour with replacements before the sockets close.

Every message is validated by ``gossip.net.wire`` against the run's address allow-list before it reaches the
protocol; joins are rate-limited on top of the per-sender limit, since a flood of joins comes from many ids.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import numpy as np
import torch

from gossip.algorithms.pushsum import absorb_weights, split_mass
from gossip.config import RunConfig
from gossip.errors import RejectReason, TransportError, UsageError
from gossip.ids import NodeId
from gossip.learn.flat import model_hash
from gossip.learn.trainer import LocalTrainer
from gossip.net.connections import size_limits
from gossip.net.curve import key_owners, load_keys
from gossip.net.sendbuffers import SnapshotPool
from gossip.net.wire import Expectation, Message
from gossip.net.zeromq import ZmqTransport
from gossip.node.member_link import TICK_S, MemberLink
from gossip.node.mixer import Mixer
from gossip.node.outbox import pushed_model
from gossip.node.plan import NodePlan, build_flat_model, message_limit, plan_node, run_id_of
from gossip.node.records import NodeResult, Recorder, member_summary
from gossip.ops.metrics import NodeMetrics
from gossip.results.rundir import NodeFiles, RecordWriter, save_vector
from gossip.results.summary import NodeSummary
from gossip.seeds import batch_seed, membership_seed, push_seed
from gossip.topology.members import MAX_MEMBER_ID, Member
from gossip.topology.membership import Membership, MembershipSettings, Send

__all__ = ["MemberNode", "build_member", "settings_of"]

log = logging.getLogger("gossip.node")


def settings_of(section: Any) -> MembershipSettings:
    """The protocol's numbers from ``[membership]``."""
    return MembershipSettings(
        degree=section.degree,
        max_degree=section.max_degree,
        view_size=section.view_size,
        shuffle_length=section.shuffle_length,
        shuffle_period_s=section.shuffle_period_s,
        heartbeat_s=section.heartbeat_s,
        failure_timeout_s=section.failure_timeout_s,
    )


class MemberNode:
    """One member of an open network (see the module). ``await node.run()`` returns its :class:`NodeResult`."""

    def __init__(
        self,
        plan: NodePlan,
        transport: ZmqTransport,
        me: Member,
        join: tuple[int, str] | None,
        *,
        metrics: NodeMetrics | None = None,
    ) -> None:
        cfg = self.cfg = plan.cfg
        self.plan = plan
        self.id = plan.node_id
        self.me = me
        self.join = join  # (contact id or -1, contact address); None: the first member
        self.transport = transport
        self.run_id = run_id_of(cfg)
        self.flat = build_flat_model(plan)
        ds = plan.dataset
        x, y = np.ascontiguousarray(ds.x_train[plan.shard]), ds.y_train[plan.shard]
        self.trainer = LocalTrainer(
            self.flat.module, x, y, ds.x_test, ds.y_test, cfg.training, cfg.data.batch_size, seed=batch_seed(cfg.run.seed, int(self.id))
        )
        self.metrics = metrics or NodeMetrics(plan.node_id, (), cfg.aggregation.rule)
        self.metrics.rounds_planned.set(cfg.training.rounds)
        self.round = 0
        self.mixer = Mixer(cfg, self.flat, self.metrics, lambda: self.round / cfg.training.rounds)
        self.recorder = Recorder(int(self.id), self.metrics, cfg.run.log_interval_s)
        self.membership = Membership(me, settings_of(cfg.membership), random.Random(membership_seed(cfg.run.seed, int(self.id))))
        self.snapshots = SnapshotPool()
        layout = self.flat.layout
        expect = Expectation(
            self.run_id, layout.fingerprint, layout.numel, MAX_MEMBER_ID, frozenset(), policy=cfg.membership.policy(), me=me
        )
        sec = cfg.security
        self.link = MemberLink(
            transport, self.membership, expect, self.metrics, max_messages_per_s=sec.max_messages_per_s, burst_messages=sec.burst_messages
        )
        self.mass = 1.0
        self.ready = False
        self.stopping = False
        self.synced_from: tuple[int, ...] = ()
        # a newcomer keeps the models that arrive before it trains (each neighbour's latest): its starting point
        self._sync: dict[int, torch.Tensor] | None = {} if join is not None else None
        self._absorbing = False
        self._absorbed: list[tuple[NodeId, int, float]] = []
        self._rng = np.random.default_rng(push_seed(cfg.run.seed, int(self.id)))
        self._failure: BaseException | None = None  # what ended the receive loop or the clock

    # -- lifecycle -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Leave at the end of the current step (SIGTERM, Ctrl-C)."""
        self.stopping = True

    async def run(self) -> NodeResult:
        files = NodeFiles(self.plan.run_dir, self.id) if self.plan.run_dir else None
        writer = RecordWriter(files.records, truncate=True) if files else None
        await self.transport.start()
        tasks = [
            asyncio.create_task(self.link.receive(self._take_model, self._answer_state), name=f"recv-{self.id}"),
            asyncio.create_task(self.link.clock(), name=f"clock-{self.id}"),
        ]
        for task in tasks:
            task.add_done_callback(self._died)
        status, accuracy = "finished", float("nan")
        try:
            if self.join is not None:
                await self._join(*self.join)
            self.ready = True
            accuracy = await self._train(writer)
            if self.stopping:
                status = "stopped"
        finally:
            self.link.send(self.membership.leave())
            self._check()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if writer:
                writer.close()
            await self.transport.close()
        result = NodeResult(int(self.id), status, self.round, accuracy, model_hash(self.flat.vector))
        if files:
            save_vector(files.model, self.flat.vector.numpy())
            self._summary(result).write(files.summary)
        return result

    def _died(self, task: asyncio.Task[None]) -> None:
        """The receive loop or the clock ended by itself: a bug, not a peer's doing (peers' input is refused, never raised)."""
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            self.stopping = True

    def _check(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"node {self.id}: {self._failure!r}") from self._failure

    async def _join(self, contact_id: int, contact: str) -> None:
        """In through ``contact`` (asked again by the membership clock until it answers), then start from the average of
        the first neighbours' models."""
        cfg = self.cfg.membership
        deadline = time.monotonic() + cfg.join_timeout_s
        self.link.send(self.membership.join(contact, time.monotonic(), contact_id))
        while not self.membership.neighbours:
            if time.monotonic() > deadline:
                raise TransportError(f"node {self.id}: no member answered at {contact} within {cfg.join_timeout_s:g} s")
            if self.stopping:
                return
            await asyncio.sleep(TICK_S)
        await asyncio.sleep(cfg.heartbeat_s)  # let the other link answers land: more models to average
        asked = dict(self.membership.neighbours)
        self.link.send([Send(m, "state_request") for m in asked.values()])
        wait_until = time.monotonic() + min(cfg.join_timeout_s, cfg.failure_timeout_s)
        while self._sync is not None and not set(asked) <= set(self._sync) and time.monotonic() < wait_until and not self.stopping:
            await asyncio.sleep(TICK_S)
        received, self._sync = self._sync or {}, None
        received = {j: v for j, v in received.items() if j in asked}
        if received:
            self.flat.vector.copy_(torch.stack([received[j] for j in sorted(received)]).mean(dim=0))
        self.synced_from = tuple(sorted(received))
        log.info(
            "node %s joined through %s: neighbours %s, started from the average of %s",
            self.id,
            contact,
            sorted(asked),
            list(self.synced_from),
        )

    async def _train(self, writer: RecordWriter | None) -> float:
        """Local steps and a push every period until the budget is spent (async gossip); the final model's accuracy."""
        cfg = self.cfg.training
        start = time.monotonic()
        self._absorbing = True
        pending: dict[str, Any] | None = None
        try:
            for t in range(cfg.rounds):
                if self.stopping or (cfg.duration_s and time.monotonic() - start >= cfg.duration_s):
                    break
                tick_start = time.monotonic()
                if pending is not None:
                    self.recorder.write(writer, pending)
                pending = self._step(t)
                await asyncio.sleep(max(0.0, cfg.period_s - (time.monotonic() - tick_start)))
        finally:
            self._absorbing = False
        evaluation = self.trainer.evaluate()
        self.recorder.observe(None, evaluation)
        if pending is not None:
            pending.update(accuracy=evaluation.accuracy, test_loss=evaluation.loss)
            self.recorder.write(writer, pending)
        return evaluation.accuracy

    def _step(self, t: int) -> dict[str, Any]:
        """Local steps, one push to a random neighbour, and the record of what happened since the last step."""
        t0 = time.perf_counter()
        self.round = t
        self.metrics.round.set(t)
        sent_0 = self.link.bytes_out
        step = self.trainer.steps(self.cfg.training.local_steps)
        neighbours = sorted(self.membership.neighbours)
        target = neighbours[int(self._rng.integers(len(neighbours)))] if neighbours else None
        if target is not None:
            kept, sent = split_mass(self.mass) if self.cfg.training.push_sum else (self.mass, None)
            if self._push(NodeId(target), t, sent):
                self.mass = kept
        evaluation = self.trainer.evaluate() if (t + 1) % self.cfg.training.eval_every == 0 else None
        absorbed, self._absorbed = self._absorbed, []
        self.metrics.rounds.inc()
        self.metrics.round_duration.observe(time.perf_counter() - t0)
        self.recorder.observe(step, evaluation)
        distances = [d for _j, _n, d in absorbed]
        if distances:
            self.metrics.consensus_distance.set(distances[-1])
        self.round = self.link.round = t + 1
        counts = self.membership.counts
        return {
            **self.recorder.head(t, step, evaluation),
            "consensus_distance": sum(distances) / len(distances) if distances else None,
            "comm": "push",
            "pushed_to": target,
            "arrived": len(absorbed),
            "merged_from": [int(j) for j, _n, _d in absorbed],
            "mass": self.mass,
            "bytes_sent": self.link.bytes_out - sent_0,
            "bytes_received": sum(n for _j, n, _d in absorbed),
            "rejected": sum(self.link.rejects.values()),
            "neighbours": neighbours,
            "view": len(self.membership.view),
            "joins": counts["joins"],
            "leaves": counts["leaves"],
            "failures": counts["failures"],
            "neighbour_changes": counts["neighbour_changes"],
            "round_s": time.perf_counter() - t0,
        }

    # -- sending ---------------------------------------------------------------------------------

    def _push(self, peer: NodeId, t: int, mass: float | None) -> bool:
        dtype = self.cfg.transport.wire_dtype
        frames = pushed_model(self.snapshots, self.flat, src=self.id, round_=t, run_id=self.run_id, dtype=dtype, mass=mass)
        return self.link.transmit(peer, frames)

    # -- receiving -------------------------------------------------------------------------------

    def _answer_state(self, peer: NodeId) -> None:
        self._push(peer, self.round, None)

    def _take_model(self, message: Message, _now: float) -> bool:
        if message.payload is None:
            return False
        if self._sync is not None:
            self._sync[int(message.src)] = message.payload.clone()
            return True
        if not self._absorbing:
            self.link.reject(RejectReason.UNEXPECTED, int(message.src))
            return False
        if self.cfg.training.push_sum and message.mass is not None:
            weights, self.mass = absorb_weights(self.mass, {message.src: message.mass})
        else:
            weights = {message.src: 0.5}
        distance = self.mixer.mix({message.src: message.payload}, weights)
        self.metrics.arrived(int(message.src), message.round)
        self._absorbed.append((message.src, message.nbytes, distance))
        return True

    @property
    def contact(self) -> str | None:
        """The address this member joined through (``None``: it was the first)."""
        return self.join[1] if self.join is not None else None

    def _summary(self, result: NodeResult) -> NodeSummary:
        return member_summary(self, result)


def build_member(
    cfg: RunConfig, node_id: int, run_dir: str | None, address: str, join: tuple[int, str] | None, *, listen: str | None = None
) -> tuple[MemberNode, ZmqTransport]:
    """A member known to the others at ``address`` and bound at ``listen`` (default: the same), joining through
    ``join`` = (the contact's id, -1 when unknown; its address), or the first member (``None``), and its transport; no
    socket is opened yet. With ``[security] curve`` its key pair and the allow-list are the key files of ``keys_dir``."""
    plan = plan_node(cfg, node_id, run_dir)
    max_frame_bytes = message_limit(plan)
    sec = cfg.security
    limits = size_limits(
        cfg.membership.max_degree + cfg.membership.view_size,
        max_frame_bytes,
        cfg.transport.queue_messages,
        handshake_timeout_s=sec.handshake_timeout_s,
        max_connections=sec.max_connections,
        max_per_address=sec.max_connections_per_address,
    )
    curve = None
    if sec.curve:
        if not sec.keys_dir:
            raise UsageError("[security] curve = true needs keys_dir: the member's key pair and the public keys it admits")
        curve = load_keys(sec.keys_dir, node_id, key_owners(sec.keys_dir, node_id))
    transport = ZmqTransport(
        plan.node_id,
        listen or address,
        {},
        queue_messages=cfg.transport.queue_messages,
        max_message_bytes=max_frame_bytes,
        limits=limits,
        curve=curve,
    )
    node = MemberNode(plan, transport, Member(node_id, address), join)
    transport.on_refused = node.metrics.connection_refused
    transport.on_unauthenticated = lambda: node.link.reject(RejectReason.UNAUTHENTICATED, None)
    return node, transport
