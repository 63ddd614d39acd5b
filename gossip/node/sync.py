"""The synchronous round driver: train → send → collect → mix → evaluate → record, round after round.

Round *t* (adapt-then-combine):

1. ``local_steps`` SGD steps on the node's shard;
2. the parameter vector goes to the round's peers, tagged *t* (:mod:`gossip.node.outbox`: handed to ZeroMQ
   live, zero-copy from 1 MiB and mixed only once ZeroMQ let go; copied by the socket below);
3. wait for the neighbours' round-*t* models until ``round_timeout_s`` (a neighbour that missed its last
   round: a shorter wait; one that is down: none, :mod:`gossip.node.liveness`); models for later rounds that
   arrive meanwhile are buffered, models for earlier rounds are dropped and counted (``stale_round``);
4. mix with the round's weights over what arrived — a missing neighbour's weight goes back to the node;
5. evaluate, record one JSONL line, update the metrics.

The steps are the node's (:class:`RoundSteps`), so a Byzantine node or a test changes one step, not the loop.
Divergence: a model that is no longer finite after its local steps ends the round there (:class:`Diverged`),
after its mix at the end of the round; either way the run stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from gossip.ids import NodeId
from gossip.learn.trainer import StepResult
from gossip.net.sendbuffers import until_released
from gossip.net.wire import Message
from gossip.node.core import NodeCore
from gossip.node.mixer import Mixer
from gossip.node.outbox import Outbox
from gossip.node.peers import Peers
from gossip.node.receiver import Receiver
from gossip.node.records import Diverged, Recorder, all_finite
from gossip.results.rundir import RecordWriter
from gossip.topology.schedule import Exchange

__all__ = ["RoundSteps", "SyncRounds"]

log = logging.getLogger("gossip.node")


class RoundSteps(Protocol):
    """The overridable steps of a round (a :class:`~gossip.node.node.Node`)."""

    def train(self) -> StepResult: ...

    async def exchange(self, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]: ...

    def mix(self, received: Mapping[NodeId, torch.Tensor]) -> float: ...

    async def run_round(self, t: int) -> dict[str, Any]: ...


class SyncRounds:
    """The synchronous rounds of one node over its core and collaborators (see the module)."""

    def __init__(self, core: NodeCore, outbox: Outbox, receiver: Receiver, peers: Peers, mixer: Mixer, recorder: Recorder) -> None:
        self.core = core
        self.outbox = outbox
        self.receiver = receiver
        self.peers = peers
        self.mixer = mixer
        self.recorder = recorder
        # whom this round sends to and waits for, with which weights (gossip.topology.schedule)
        self.round_plan = Exchange("all", core.neighbours, core.neighbours, None)
        self.diverged: dict[str, Any] | None = None  # {"round", "loss"} once the model is no longer finite
        self._late_wait_s: float | None = None  # this round's wait for late neighbours (None: none was late)

    async def run(
        self, steps: RoundSteps, start: int, writer: RecordWriter | None, checkpoint_due: Callable[[int], None]
    ) -> tuple[int, float]:
        """Run rounds from ``start`` (or where the peers' rules move it) to the end; returns (rounds run, last accuracy).

        ``checkpoint_due(t)`` is called after every recorded round ``t`` (it decides whether one is written).
        """
        core, cfg = self.core, self.core.cfg
        ran = 0
        accuracy = float("nan")
        t = self.peers.rejoin_round(start)
        first = True
        while not core.stopping and (t := self.peers.catch_up(t)) < cfg.training.rounds:
            try:
                record = await steps.run_round(t)
            except Diverged as exc:  # in its local steps: the round ends there, unrecorded
                self.diverged = {"round": exc.round, "loss": exc.loss}
                break
            ran += 1
            if first and self.peers.resumed is not None:
                record["resumed"] = dict(self.peers.resumed)
            first = False
            if self.peers.skipped is not None:
                record["skipped"], self.peers.skipped = self.peers.skipped, None
            if record["accuracy"] is not None:
                accuracy = record["accuracy"]
            self.recorder.write(writer, record)
            # in the mix (an overflow): caught here for the last round's sake; D-SGD's finite distance proved it already
            if not (self.mixer.finite or all_finite(core.flat.vector)):
                self.diverged = {"round": t, "loss": record["loss"]}
                break
            checkpoint_due(t)
            t += 1
        return ran, accuracy

    async def run_round(self, steps: RoundSteps, t: int) -> dict[str, Any]:
        """Round ``t``: train, exchange, mix, evaluate; returns the round's JSONL record."""
        core, cfg = self.core, self.core.cfg
        t_start = time.perf_counter()
        cpu_start = time.thread_time()  # this thread: ZeroMQ's I/O thread works alongside, counted in cpu_clock_s
        self._begin(t)
        bytes_out_0 = self.outbox.bytes_out

        step = steps.train()
        if not all_finite(core.flat.vector):  # leave before sending models every neighbour refuses (and waits out the round timeout for)
            raise Diverged(t, step.loss)
        await core.straggle()
        t_trained = time.perf_counter()
        cpu_trained = time.thread_time()
        got, timing = await self._exchange_if_planned(steps, t, step.loss)
        t_exchanged = time.perf_counter()
        received = {j: m.payload for j, m in got.items() if m.payload is not None}
        missing = [int(j) for j in self.round_plan.expect_from if j not in received]
        self._observe_peers(t, received, missing)
        distance = core.choco.mix(core.flat.vector, got, core.weights) if core.choco is not None else steps.mix(received)
        t_mixed = time.perf_counter()

        evaluate = (t + 1) % cfg.training.eval_every == 0 or t == cfg.training.rounds - 1
        evaluation = core.trainer.evaluate() if evaluate else None
        t_end = time.perf_counter()
        cpu_end = time.thread_time()

        self._round_done(t_end - t_start, distance, len(received))
        self.recorder.observe(step, evaluation)
        core.round = t + 1
        return {
            **self.recorder.head(t, step, evaluation),
            "consensus_distance": distance,
            "comm": self.round_plan.kind,
            "arrived": len(received),
            "missing": missing,
            "bytes_sent": self.outbox.bytes_out - bytes_out_0,
            "bytes_received": sum(m.nbytes for m in got.values()),  # the models mixed this round
            "rejected": sum(self.receiver.rejects.values()),
            "link_dropped": core.transport.dropped,  # cumulative messages the link emulation lost
            # measured with the evaluation (eval_every): four passes over the vector; the variance rule
            # computes it anyway and records it every round
            "layer_var": self.mixer.layer_record() if evaluate or self.mixer.saw_layers else None,
            "round_s": t_end - t_start,
            "train_s": t_trained - t_start,
            "encode_s": timing["encode_s"],
            "send_s": timing["send_s"],
            "wait_s": timing["wait_s"],
            "late_wait_s": self._late_wait_s,  # how long the round waited for neighbours that missed their last round
            "aggregate_s": t_mixed - t_exchanged,
            "h2d_s": self.mixer.uploads.seconds if received else 0.0,  # of aggregate_s: copies of what arrived to a GPU (0 on a CPU)
            "eval_s": t_end - t_mixed,
            # CPU seconds of the round's thread and of its local steps: on a machine with fewer cores
            # than nodes, wall times include waiting for the CPU; CPU times show what the round costs.
            "cpu_s": cpu_end - cpu_start,
            "train_cpu_s": cpu_trained - cpu_start,
            # the process's CPU clock (last, after layer_record): differences between two records are
            # the whole cost of the rounds between them, bookkeeping and the receive loop included
            "cpu_clock_s": time.process_time(),
        }

    def _begin(self, t: int) -> None:
        """Enter round ``t``: its exchange plan, the inbox window, the models that arrived ahead of it."""
        core = self.core
        core.round = t
        core.metrics.round.set(t)
        self.round_plan = core.schedule.exchange(core.id, t)
        core.inbox.advance(t, until=core.horizon(t))
        self.receiver.take_ahead()
        self._late_wait_s = None
        self.mixer.finite = False  # until this round's mix proves it: one not through the mixer (CHOCO, an override) does not

    async def _exchange_if_planned(self, steps: RoundSteps, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]:
        """The round's exchange, or for a local-only round nothing to send and nobody to wait for."""
        if self.round_plan.communicates:
            return await steps.exchange(t, loss)
        self.core.metrics.local_only_rounds.inc()
        await asyncio.sleep(0)  # still serve the event loop (receive task, SIGTERM) once a round
        return {}, {"encode_s": 0.0, "send_s": 0.0, "wait_s": 0.0}

    def _round_done(self, seconds: float, distance: float, alive: int) -> None:
        """A finished round's duration, consensus distance and live peers, to the metrics and the liveness rules."""
        metrics = self.core.metrics
        metrics.rounds.inc()
        metrics.round_duration.observe(seconds)
        if self.round_plan.communicates:
            self.core.liveness.round_took(seconds)
        metrics.consensus_distance.set(distance)
        metrics.peers_alive.set(alive)

    def _observe_peers(self, t: int, received: Mapping[NodeId, torch.Tensor], missing: list[int]) -> None:
        """Who arrived and who missed round ``t``, to the metrics and the liveness rules; hellos to the silent."""
        core = self.core
        for j in received:
            core.metrics.arrived(j, t)
        for k in missing:
            core.metrics.missed(k)
        for event in core.liveness.observe(t, received, missing):
            if event.state == "down":
                log.warning("node %s: neighbour %s missed %d rounds in a row: down? (round %d)", core.id, event.peer, event.missed, t)
            else:
                log.warning("node %s: neighbour %s is back in round %d after %d missed rounds", core.id, event.peer, t, event.missed)
        self.peers.probe_down()

    async def exchange(self, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]:
        """Send our model to the round's peers (every neighbour by default), then collect the models
        the schedule says will arrive, until the round timeout."""
        core = self.core
        t0 = time.perf_counter()
        frames, tracker = self.outbox.model_frames(t, loss)
        t1 = time.perf_counter()
        # a peer it could not go to has no connection, or its queue is full: it is gone or not reading
        unsent = self.outbox.send_all(self.round_plan.send_to, frames)
        if unsent and core.choco is not None:
            core.choco.resync()  # their copy of our public copy is now behind
        del frames  # the tracked frame must die for its tracker to finish
        t2 = time.perf_counter()
        # Who is waited for how long (gossip.node.liveness): neighbours in good standing until the round timeout,
        # late ones (missed their last round, or our model could not be handed to them) for the late wait,
        # the down and those past this round not at all, nor neighbours that said bye. Everything that
        # arrived by then is mixed either way.
        patient, late = core.liveness.waits(t, [j for j in self.round_plan.expect_from if j not in core.inbox.gone])
        if unsent:
            late += [j for j in patient if j in unsent]
            patient = [j for j in patient if j not in unsent]
        now = time.monotonic()
        deadline = now + core.cfg.transport.round_timeout_s
        if late:
            self._late_wait_s = core.liveness.late_wait_s(core.cfg.transport.round_timeout_s)
            await core.inbox.collect(t, [*patient, *late], min(deadline, now + self._late_wait_s))
        got = await core.inbox.collect(t, patient, deadline)
        if tracker is not None:  # mixing writes the vector next: ZeroMQ must be done reading it
            transport = core.transport
            grace = max(deadline, time.monotonic() + min(1.0, core.cfg.transport.round_timeout_s))
            send_to = self.round_plan.send_to
            if not await until_released(tracker, grace, lambda: transport.drop_queued(send_to)):
                log.warning("node %s: ZeroMQ still held our round-%d model after dropping what was queued", core.id, t)
        t3 = time.perf_counter()
        core.metrics.wait.observe(t3 - t2)
        return got, {"encode_s": t1 - t0, "send_s": t2 - t1, "wait_s": t3 - t2}

    def mix(self, received: Mapping[NodeId, torch.Tensor]) -> float:
        """Mix what arrived with the round plan's weights (1/2 for a pull or a one-peer round), else the topology's."""
        source = self.round_plan.weights if self.round_plan.weights is not None else self.core.weights
        return self.mixer.mix(received, {j: source[j] for j in received})
