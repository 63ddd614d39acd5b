"""What a node does with what arrives: validate every message, dispatch it by kind, count what it refuses.

A bad message is counted under its :class:`~gossip.errors.RejectReason` (logged once per reason) and dropped,
never raised. Models go to the inbox when they belong to its window and the schedule expects them; a model
from beyond the window is kept aside (:meth:`Receiver.take_ahead`), since a node that skips ahead may land in
its round. In async gossip, models go to the driver's ``absorb`` instead.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from gossip.errors import RejectReason, WireError
from gossip.ids import NodeId
from gossip.net.ratelimit import RateLimiter
from gossip.net.wire import MERGE_KINDS, Expectation, Kind, Message, decode
from gossip.node.core import NodeCore
from gossip.node.merge import GlobalMerge
from gossip.node.outbox import Outbox
from gossip.node.peers import Peers

__all__ = ["Receiver"]

log = logging.getLogger("gossip.node")


class Receiver:
    """The receive loop of one node and its refusals (see the module)."""

    def __init__(self, core: NodeCore, outbox: Outbox, peers: Peers, merger: GlobalMerge | None) -> None:
        cfg = core.cfg
        self.core = core
        self.outbox = outbox
        self.peers = peers
        self.merger = merger
        self.absorb: Callable[[Message], None] | None = None  # async gossip merges models as they arrive
        self.expect = Expectation(
            run_id=core.run_id,
            fingerprint=core.flat.layout.fingerprint,
            numel=core.flat.layout.numel,
            node_count=core.plan.topology.n,
            neighbours=frozenset(core.neighbours),
            # any round of the run: the inbox keeps the rounds of its window, and a model from outside it
            # still shows where its sender is (a late node skips ahead on that); the node counts it refused
            round_min=0,
            round_max=cfg.training.rounds - 1 if cfg.training.mode == "sync" else 1 << 62,
            merge_epoch=cfg.training.rounds if cfg.merge.enabled else -1,
        )
        self.rejects: Counter[str] = Counter()
        self.bytes_in = 0
        self._limiter = RateLimiter(cfg.security.max_messages_per_s, cfg.security.burst_messages, core.plan.topology.n)
        self._ahead: dict[NodeId, Message] = {}  # each neighbour's latest model from beyond our window, for when we get there

    async def loop(self) -> None:
        """Validate everything that arrives; a bad message is counted and dropped, never raised."""
        transport, metrics = self.core.transport, self.core.metrics
        while True:
            received = await transport.recv()
            if received.refused is not None:  # the transport refused it (a shared-memory slot): counted like the rest
                self.reject(received.refused, "by the transport", received.sender)
                continue
            if not self._limiter.allow(received.sender):
                self.reject(RejectReason.RATE_LIMITED, "", received.sender)
                continue
            try:
                message = decode(received.frames, self.expect, received.sender)
            except WireError as exc:
                self.reject(exc.reason, exc.detail, received.sender)
                continue
            if self.deliver(message):  # counted as received only when the node kept it, else under its refusal
                self.bytes_in += received.nbytes
                metrics.received(message.src, received.nbytes, message.round)

    def deliver(self, message: Message) -> bool:
        """Act on a valid message; False when the node refused it after all (counted under the reason)."""
        core = self.core
        if message.kind is Kind.HELLO:
            if not self._claim_ok(message):
                return False
            if core.ready:  # a neighbour (re)starting while we run: it learns our round from the welcome
                log.info("node %s: neighbour %s said hello in our round %d (its round %d)", core.id, message.src, core.round, message.round)
                self.peers.greeted(message.src)
            core.inbox.mark_back(message.src)
            core.liveness.heard(message.src, message.round, core.round)
            if core.choco is not None:  # a restarted neighbour lost its copy of ours
                core.choco.resync()
            self.outbox.say(Kind.WELCOME, message.src)
        elif message.kind is Kind.WELCOME:
            if not self.peers.welcome_expected(message.src):
                self.reject(RejectReason.UNEXPECTED, "welcome without our hello", message.src)
                return False
            if not self._claim_ok(message):
                return False
            self.peers.welcomed.add(message.src)
            core.liveness.heard(message.src, message.round, core.round)
        elif message.kind is Kind.BYE:  # until its next model: one that says bye and keeps sending is back
            core.inbox.mark_gone(message.src)
        elif message.kind in MERGE_KINDS:
            if self.merger is not None:
                self.merger.deliver(message)
        elif message.kind is Kind.DELTA and core.choco is None:
            self.reject(RejectReason.UNEXPECTED, "delta without compression.method = 'topk'", message.src)
            return False
        elif message.kind in (Kind.MODEL, Kind.DELTA):
            if self.absorb is not None:
                self.absorb(message)
                return True
            return self._file_model(message)
        return True

    def _file_model(self, message: Message) -> bool:
        """A synchronous round's model: into the inbox when its window and the schedule want it."""
        core = self.core
        # a valid model of any round shows where its sender is, and that it is still there
        core.liveness.heard(message.src, message.round, core.round)
        if message.src in core.inbox.gone:
            core.inbox.mark_back(message.src)
        if message.round > core.inbox.current_round:
            core.inbox.mark_passed(message.src)
        lo, hi = core.inbox.window()
        if message.round < lo:
            self.reject(RejectReason.STALE_ROUND, f"round {message.round} < {lo}", message.src)
            return False
        if message.round > hi:
            self._ahead[message.src] = message  # the latest one: if we skip ahead, it may be the round we land in
            self.reject(RejectReason.FUTURE_ROUND, f"round {message.round} > {hi}", message.src)
            return False
        if not core.schedule.expects(core.id, message.src, message.round):
            self.reject(RejectReason.UNEXPECTED, f"round {message.round}", message.src)
            return False
        core.inbox.put(message)
        return True

    def take_ahead(self) -> None:
        """Move the models that came too early for our window into the inbox once the window reaches them."""
        if not self._ahead:
            return
        core = self.core
        lo, hi = core.inbox.window()
        for j, message in list(self._ahead.items()):
            if message.round < lo:
                del self._ahead[j]
            elif message.round <= hi:
                del self._ahead[j]
                if core.schedule.expects(core.id, message.src, message.round):
                    core.inbox.put(message)

    def _claim_ok(self, message: Message) -> bool:
        """A hello's or welcome's round must lie inside the run; refused (and counted) otherwise."""
        if 0 <= message.round <= self.core.cfg.training.rounds:
            return True
        self.reject(
            RejectReason.FUTURE_ROUND if message.round > 0 else RejectReason.STALE_ROUND,
            f"{message.kind} round {message.round}",
            message.src,
        )
        return False

    def on_unauthenticated(self) -> None:
        """The transport refused a CURVE handshake from a key that is not a neighbour's."""
        self.reject(RejectReason.UNAUTHENTICATED, "unknown CURVE key", None)

    def reject(self, reason: RejectReason, detail: str, sender: int | None) -> None:
        """Count a dropped message under its reason (logged once per reason)."""
        self.core.metrics.rejected(reason)
        if self.rejects[reason.value] == 0:  # log once per reason; the counter has the rest
            log.warning("node %s: rejected a message from %s: %s %s", self.core.id, sender, reason.value, detail)
        self.rejects[reason.value] += 1
