"""Asynchronous gossip learning on one node: push to a random neighbour every period, merge on receipt.

After Ormándi, Hegedűs, Jelasity 2013 ("Gossip learning with linear models on fully distributed data"):
there are no rounds and nobody waits. Every ``period_s`` a node takes its ``local_steps`` SGD steps and
pushes a snapshot of its model to one neighbour drawn uniformly (a generator seeded by (seed, node)),
skipping neighbours that said bye. The receive loop merges every model as it arrives, through the same
mixer (:mod:`gossip.node.mixer`) and the same aggregators as the synchronous rounds, with this merge's
weights as an argument: weight 1/2 (Ormándi's merge of
two models), or with ``push_sum`` the push-sum weights of ``gossip.algorithms.pushsum``; with
``[aggregation] rule = "variance"`` every merge is variance-corrected (Tian et al. 2024 is exactly this
setting: gossip learning with independently initialised nodes).

The wire is the same: a ``model`` message whose ``round`` is the sender's push count (any value is
accepted: in async mode nodes drift apart by design), plus the push-sum mass when enabled. A node
stops after ``rounds`` pushes or ``duration_s`` seconds; a model that arrives after that is not merged
(the model is final, e.g. for the global merge) and is counted as ``unexpected``.

Not reproducible run to run (what a node merges when depends on timing); each record lists the
merges since the previous one (``merged_from``), so a run can be replayed from its records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gossip.algorithms.pushsum import absorb_weights, split_mass
from gossip.errors import RejectReason
from gossip.ids import NodeId
from gossip.learn.trainer import StepResult
from gossip.net.wire import Message
from gossip.node.core import NodeCore
from gossip.node.mixer import Mixer
from gossip.node.outbox import Outbox
from gossip.node.receiver import Receiver
from gossip.node.records import Recorder
from gossip.results.rundir import RecordWriter
from gossip.seeds import push_seed

__all__ = ["AsyncGossip"]


class AsyncGossip:
    """The async driver of one node, over the same core and collaborators as the synchronous rounds.

    ``train`` is the node's local-steps step (a Byzantine role may replace it).
    """

    def __init__(
        self, core: NodeCore, outbox: Outbox, receiver: Receiver, mixer: Mixer, recorder: Recorder, train: Callable[[], StepResult]
    ) -> None:
        self.core = core
        self.outbox = outbox
        self.receiver = receiver
        self.mixer = mixer
        self.recorder = recorder
        self.train = train
        self.mass = 1.0  # push-sum mass
        self._rng: np.random.Generator | None = None  # made on the first push: a synchronous run never imports numpy.random (~3 MiB)
        self._absorbing = False
        self._absorbed: list[tuple[NodeId, int, float]] = []  # (sender, bytes, distance) since the last record

    async def run(self, writer: RecordWriter | None) -> float:
        """Push and merge until the budget is spent; returns the accuracy of the final model.

        Records are written one tick late so that the last one can carry the final model's evaluation.
        """
        core, cfg = self.core, self.core.cfg.training
        start = time.monotonic()
        self._absorbing = True
        pending: dict[str, Any] | None = None
        try:
            for t in range(core.round, cfg.rounds):  # core.round > 0 after a resume
                if core.stopping or (cfg.duration_s and time.monotonic() - start >= cfg.duration_s):
                    break
                tick_start = time.monotonic()
                if pending is not None:
                    self.recorder.write(writer, pending)
                pending = self.tick(t)
                await core.straggle()  # a slow node ([faults]) pushes less often; it still merges meanwhile
                # always yield, so the receive loop merges what arrived even when period_s is 0
                await asyncio.sleep(max(0.0, cfg.period_s - (time.monotonic() - tick_start)))
        finally:
            self._absorbing = False
        evaluation = core.trainer.evaluate()
        self.recorder.observe(None, evaluation)
        if pending is not None:
            pending.update(accuracy=evaluation.accuracy, test_loss=evaluation.loss)
            self.recorder.write(writer, pending)
        return evaluation.accuracy

    def tick(self, t: int) -> dict[str, Any]:
        """One step: local training, one push, and the record of the merges since the last tick."""
        core = self.core
        t0 = time.perf_counter()
        core.round = t
        core.metrics.round.set(t)
        bytes_out_0 = self.outbox.bytes_out
        step = self.train()
        alive = [j for j in core.neighbours if j not in core.inbox.gone]
        if self._rng is None:
            self._rng = np.random.default_rng(push_seed(core.cfg.run.seed, int(core.id)))
        target = alive[int(self._rng.integers(len(alive)))] if alive else None
        if target is not None:
            kept, sent = split_mass(self.mass) if core.cfg.training.push_sum else (self.mass, None)
            if self.outbox.push(target, t, step.loss, sent):
                self.mass = kept  # a refused send keeps its mass
        evaluation = core.trainer.evaluate() if (t + 1) % core.cfg.training.eval_every == 0 else None
        absorbed, self._absorbed = self._absorbed, []
        core.metrics.rounds.inc()
        core.metrics.round_duration.observe(time.perf_counter() - t0)
        self.recorder.observe(step, evaluation)
        distances = [d for _j, _n, d in absorbed]
        if distances:
            core.metrics.consensus_distance.set(distances[-1])
        core.round = t + 1
        return {
            **self.recorder.head(t, step, evaluation),
            "consensus_distance": sum(distances) / len(distances) if distances else None,
            "comm": "push",
            "pushed_to": int(target) if target is not None else None,
            "arrived": len(absorbed),
            "merged_from": [int(j) for j, _n, _d in absorbed],
            "missing": [],
            "mass": self.mass,
            "bytes_sent": self.outbox.bytes_out - bytes_out_0,
            "bytes_received": sum(n for _j, n, _d in absorbed),
            "rejected": sum(self.receiver.rejects.values()),
            "layer_var": self.mixer.layer_record(),
            "round_s": time.perf_counter() - t0,
        }

    def absorb(self, message: Message) -> None:
        """Merge a model as it arrives (only while training; afterwards the model is final)."""
        core = self.core
        if not self._absorbing or message.payload is None:
            self.receiver.reject(RejectReason.UNEXPECTED, "model after training ended", message.src)
            return
        if core.cfg.training.push_sum:
            if message.mass is None:
                self.receiver.reject(RejectReason.BAD_MASS, "push-sum model without mass", message.src)
                return
            weights, self.mass = absorb_weights(self.mass, {message.src: message.mass})
        else:
            weights = {message.src: 0.5}
        distance = self.mixer.mix({message.src: message.payload}, weights)
        core.metrics.arrived(message.src, message.round)
        self._absorbed.append((message.src, message.nbytes, distance))
