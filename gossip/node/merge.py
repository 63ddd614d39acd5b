"""The single global merge (Zhu et al. 2025, "A Single Merging Suffices" / ICLR 2026 "On the Surprising
Effectiveness of a Single Global Merging in Decentralized Learning"): after training, every live node
ends with the exact average of all live nodes' models, bit-identical everywhere.

How — a direct all-to-all exchange over the same transport, in three steps, with no coordinator:

1. **models** (``merge``): each node sends its final model to every node of the run (a DEALER to each,
   connected at start-up) and collects the others' until it has all n − 1 or ``timeout_s`` passes.
   Its *view* V_i is itself plus the senders it heard from.
2. **agreement** (``merge_view``): each node sends V_i to every node and collects the views of the
   nodes in V_i (until ``timeout_s``). The merge set is S_i = V_i ∩ (∩ of the views received). Every
   node then averages S_i in sorted id order, accumulating in float64: the same inputs in the same
   order through the same IEEE operations give the same bits on every node (and machine).
3. **normalisation statistics** (``merge_stats``, only for models with BatchNorm): averaged running
   statistics are wrong for the averaged weights, so each node re-estimates them on
   ``calibration_batches`` batches of its own data (a forward pass in train mode with a cumulative
   average, like ``torch.optim.swa_utils.update_bn``) and the members average those estimates, again
   in sorted order. With an equal number of batches per node this *is* ``update_bn`` over the union of
   the nodes' calibration batches — without any node seeing another's data, and identical everywhere
   (calibrating locally and stopping there would give n different models).

Why all-to-all rather than a reduction along the graph: one step, no dependence on the topology's
diameter or on which intermediate node dies, and a dead node simply contributes nothing. The cost is
O(n·P) bytes sent and held per node (ring all-reduce would be O(P)); for the model sizes gossip is used
with here (≤ a few MB, tens of nodes) that is a fraction of one epoch's gossip traffic. The float32
wire is mandatory for merge messages, so every node averages exactly the bytes the others hold.

Failure assumptions, honestly:

- Crash-stop nodes: a node that died before the merge (or before sending its model) is excluded;
  the others agree without it. This is what the tests check, with a node killed by SIGKILL mid-run.
- Agreement is guaranteed when no node crashes *during* the merge and messages between live nodes
  arrive within ``timeout_s``. Exact agreement under crashes at arbitrary moments in an asynchronous
  network is impossible (Fischer, Lynch, Paterson 1985); a crash between steps 1 and 2 can leave nodes
  with different sets. That is never silent: each node reports the members it averaged and whether
  every view it received matched its own, and the run summary compares the merged hashes of all
  nodes (``merge_agreed``).
- Nodes are honest during the merge (a Byzantine node could send different models to different
  nodes; the merge does not defend against that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gossip.algorithms.merge import agreed_members, exact_average
from gossip.config import MergeConfig
from gossip.ids import NodeId
from gossip.net.wire import Kind, Message, encode

__all__ = ["GlobalMerge", "MergeBox", "MergeOutcome"]

RETRY_S = 0.05


async def _wait_until(changed: asyncio.Event, done: Callable[[], bool], deadline: float) -> None:
    """Wait until ``done()`` holds or the monotonic ``deadline`` passes, re-checking each time ``changed`` is set."""
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            return


class MergeBox:
    """The merge messages that arrived: at most one per (kind, sender), senders are node ids of the run."""

    def __init__(self) -> None:
        self._by_kind: dict[Kind, dict[NodeId, Message]] = {}
        self._changed = asyncio.Event()
        self._stopping = False

    def put(self, message: Message) -> None:
        self._by_kind.setdefault(message.kind, {})[message.src] = message
        self._changed.set()

    def got(self, kind: Kind) -> dict[NodeId, Message]:
        return dict(self._by_kind.get(kind, {}))

    async def collect(self, kind: Kind, wanted: Iterable[NodeId], deadline: float) -> dict[NodeId, Message]:
        """Wait until every wanted sender's message of ``kind`` is here, or ``deadline`` (monotonic)."""
        want = frozenset(wanted)
        await _wait_until(self._changed, lambda: self._stopping or want <= self._by_kind.get(kind, {}).keys(), deadline)
        return self.got(kind)

    def stop(self) -> None:
        self._stopping = True
        self._changed.set()


@dataclass(frozen=True)
class MergeOutcome:
    """What this node's merge produced."""

    vector: torch.Tensor
    members: tuple[int, ...]  # the nodes averaged, sorted
    views_agree: bool  # every view we received equalled ours
    heard: tuple[int, ...]  # nodes whose model arrived (our view)
    calibration_batches: int
    seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)


class GlobalMerge:
    """The merge protocol of one node; the node feeds it messages with :meth:`deliver`."""

    def __init__(
        self,
        me: NodeId,
        nodes: int,
        *,
        run_id: bytes,
        fingerprint: bytes,
        epoch: int,
        cfg: MergeConfig,
        send: Callable[[NodeId, Sequence[Any]], bool],
    ) -> None:
        self.me = me
        self.nodes = nodes
        self.run_id = run_id
        self.fingerprint = fingerprint
        self.epoch = epoch
        self.cfg = cfg
        self._send = send
        self.box = MergeBox()
        self._pushes: list[asyncio.Task[None]] = []

    def deliver(self, message: Message) -> None:
        """A validated merge message arrived (may be before this node reached its own merge)."""
        self.box.put(message)

    def stop(self) -> None:
        self.box.stop()

    async def run(
        self,
        vector: torch.Tensor,
        calibrate: Callable[[torch.Tensor], tuple[torch.Tensor, int]] | None = None,
        stat_mask: torch.Tensor | None = None,
    ) -> MergeOutcome:
        """Merge ``vector`` with every live node's; returns the merged vector (``vector`` is not modified).

        ``calibrate(merged) -> (vector with re-estimated statistics, batches used)`` and ``stat_mask``
        (True on running-statistic elements) are given for models with normalisation statistics.
        """
        t0 = time.monotonic()
        others = [NodeId(j) for j in range(self.nodes) if j != self.me]
        mine = vector.detach().to(torch.float32).clone()
        phases: dict[str, float] = {}
        try:
            # 1. models
            self._push(
                encode(Kind.MERGE, src=self.me, round=self.epoch, run_id=self.run_id, fingerprint=self.fingerprint, payload=mine), others
            )
            got = await self.box.collect(Kind.MERGE, others, time.monotonic() + self.cfg.timeout_s)
            held = {j: m.payload for j, m in got.items() if m.payload is not None}
            held[self.me] = mine
            view = frozenset(held)
            phases["models_s"] = time.monotonic() - t0

            # 2. agreement
            t1 = time.monotonic()
            flags = tuple(NodeId(j) in view for j in range(self.nodes))
            self._push(encode(Kind.MERGE_VIEW, src=self.me, round=self.epoch, run_id=self.run_id, members=flags), others)
            views_got = await self.box.collect(Kind.MERGE_VIEW, view - {self.me}, time.monotonic() + self.cfg.timeout_s)
            views = {j: m.members for j, m in views_got.items() if m.members is not None}
            members = agreed_members(view, views)
            merged = exact_average({j: held[j] for j in members})
            phases["agreement_s"] = time.monotonic() - t1

            # 3. normalisation statistics
            batches = 0
            if calibrate is not None and stat_mask is not None and bool(stat_mask.any()):
                t2 = time.monotonic()
                merged, batches = await self._statistics(merged, members, calibrate, stat_mask)
                phases["statistics_s"] = time.monotonic() - t2
        finally:
            for task in self._pushes:
                task.cancel()
            await asyncio.gather(*self._pushes, return_exceptions=True)
            self._pushes.clear()
        return MergeOutcome(
            vector=merged,
            members=tuple(sorted(int(j) for j in members)),
            views_agree=all(v == view for v in views.values()),
            heard=tuple(sorted(int(j) for j in view)),
            calibration_batches=batches,
            seconds=time.monotonic() - t0,
            phase_seconds=phases,
        )

    async def _statistics(
        self,
        merged: torch.Tensor,
        members: frozenset[NodeId],
        calibrate: Callable[[torch.Tensor], tuple[torch.Tensor, int]],
        stat_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, int]:
        """The merged model with every member's re-estimated statistics averaged in; and the batches this node used."""
        calibrated, batches = calibrate(merged)
        calibrated = calibrated.detach().to(torch.float32).clone()
        peers = sorted(members - {self.me})
        frames = encode(
            Kind.MERGE_STATS, src=self.me, round=self.epoch, run_id=self.run_id, fingerprint=self.fingerprint, payload=calibrated
        )
        self._push(frames, peers)
        stats_got = await self.box.collect(Kind.MERGE_STATS, peers, time.monotonic() + self.cfg.timeout_s)
        estimates = {j: m.payload for j, m in stats_got.items() if j in members and m.payload is not None}
        estimates[self.me] = calibrated
        stats = exact_average(estimates)
        return torch.where(stat_mask, stats, merged), batches

    def _push(self, frames: Sequence[Any], peers: Iterable[NodeId]) -> None:
        """Send to every peer now; retry the refused ones in the background until the merge ends.

        A refused send means no live connection (the peer is down, or its link is reconnecting); the
        retries cover the second case and cost nothing for a dead node.
        """
        pending = [p for p in peers if not self._send(p, frames)]
        if pending:
            self._pushes.append(asyncio.create_task(self._retry(frames, pending)))

    async def _retry(self, frames: Sequence[Any], pending: list[NodeId]) -> None:
        deadline = time.monotonic() + 3 * self.cfg.timeout_s
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(RETRY_S)
            pending = [p for p in pending if not self._send(p, frames)]
