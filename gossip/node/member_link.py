"""A member's membership protocol on the wire: what it sends, what it accepts, and the clock that drives it.

:class:`~gossip.topology.membership.Membership` decides (without I/O); this class carries its decisions out
for :class:`~gossip.node.member.MemberNode`: it dials members (only at addresses ``[membership] allow`` and
``ports`` admit), retries a message a PUSH refused because its connection was not up yet, validates every
arrival against an :class:`~gossip.net.wire.Expectation` kept in step with the current neighbours (models
only from them; membership messages from anyone, checked), rate-limits joins on top of the per-sender
limit (a flood of joins comes from many ids), closes the sockets of members it no longer knows, and reports
the protocol's events to the metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from gossip.errors import RejectReason, TransportError, WireError
from gossip.ids import NodeId
from gossip.net.ratelimit import RateLimiter
from gossip.net.wire import Expectation, Kind, Message, decode, encode
from gossip.net.zeromq import ZmqTransport
from gossip.ops.metrics import MembershipMetrics, NodeMetrics
from gossip.topology.members import MAX_MEMBER_ID
from gossip.topology.membership import Membership, Send

__all__ = ["JOINS_PER_S", "RETRY_S", "SWEEP_S", "TICK_S", "MemberLink"]

log = logging.getLogger("gossip.node")

TICK_S = 0.05  # the membership clock's resolution
JOINS_PER_S = 20.0  # joins a member answers per second, from all senders together
RETRY_S = 1.0  # how long a membership message to a member just dialled is retried
SWEEP_S = 5.0  # how often the sockets of members no longer known are closed


class MemberLink:
    """The wire side of one member's membership (see the module)."""

    def __init__(
        self,
        transport: ZmqTransport,
        membership: Membership,
        expect: Expectation,
        metrics: NodeMetrics,
        *,
        max_messages_per_s: float,
        burst_messages: int,
    ) -> None:
        self.transport = transport
        self.membership = membership
        self.me = membership.me
        self.expect = expect
        self.metrics = metrics
        self.events = MembershipMetrics(metrics)
        self.policy = expect.policy
        self.round = 0  # the round our messages carry: the member's push count
        self.rejects: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self._limiter = RateLimiter(max_messages_per_s, burst_messages, MAX_MEMBER_ID)
        self._joins = RateLimiter(JOINS_PER_S, int(JOINS_PER_S), 1)
        self._retry: list[tuple[float, NodeId, list[Any]]] = []  # (until, peer, frames) refused by a connection not up yet
        self._counted: Counter[str] = Counter()  # membership counts already reported to the metrics
        self._undialled: set[NodeId] = set()  # members we could not dial (logged once each)

    # -- out -------------------------------------------------------------------------------------

    def send(self, sends: list[Send]) -> None:
        """Membership messages out; a member whose address the run does not allow is never dialled."""
        for s in sends:
            if s.to.id >= 0 and (self.policy is None or self.policy.refusal(s.to.address) is not None):
                continue
            peer = NodeId(s.to.id)
            try:
                self.transport.connect(peer, s.to.address)
            except TransportError as exc:  # with CURVE: a member whose key is not in our allow-list is never dialled
                if peer not in self._undialled:
                    self._undialled.add(peer)
                    log.warning("%s", exc)
                continue
            frames = encode(Kind(s.kind), src=self.me.id, round=self.round, run_id=self.expect.run_id, me=self.me, listed=s.members)
            if not self.transmit(peer, frames):
                # a PUSH refuses until its connection is up (IMMEDIATE): a member just dialled gets a few more tries
                self._retry.append((time.monotonic() + RETRY_S, peer, frames))
        self.refresh_expectation()

    def transmit(self, peer: NodeId, frames: list[Any]) -> bool:
        """Hand a message to the transport, counting it; False when it was refused."""
        ok = self.transport.send(peer, frames)
        nbytes = sum(len(f) for f in frames)
        if ok:
            self.bytes_out += nbytes
        self.metrics.sent(int(peer), nbytes, ok)
        return ok

    def _resend(self) -> None:
        now = time.monotonic()
        waiting, self._retry = self._retry, []
        for deadline, peer, frames in waiting:
            if deadline > now and not self.transmit(peer, frames):
                self._retry.append((deadline, peer, frames))

    # -- in --------------------------------------------------------------------------------------

    async def receive(self, take_model: Callable[[Message, float], bool], answer_state: Callable[[NodeId], None]) -> None:
        """Validate everything that arrives: models go to ``take_model``; a state request from a neighbour to ``answer_state``."""
        while True:
            received = await self.transport.recv()
            if not self._limiter.allow(received.sender):
                self.reject(RejectReason.RATE_LIMITED, received.sender)
                continue
            try:
                message = decode(received.frames, self.expect, received.sender)
            except WireError as exc:
                self.reject(exc.reason, received.sender)
                continue
            now = time.monotonic()
            if message.kind is Kind.MODEL:
                self.membership.heard(int(message.src), now)
                kept = take_model(message, now)
            else:
                kept = self._membership_message(message, now)
                if kept and message.kind is Kind.STATE_REQUEST and int(message.src) in self.membership.neighbours:
                    answer_state(message.src)  # our model as it is: a newcomer's start
            if kept:
                self.bytes_in += received.nbytes
                self.metrics.received(int(message.src), received.nbytes, message.round)

    def _membership_message(self, message: Message, now: float) -> bool:
        if message.me is None:
            self.reject(RejectReason.UNEXPECTED, int(message.src))
            return False
        if message.kind is Kind.JOIN and not self._joins.allow(0, now):
            self.reject(RejectReason.JOIN_FLOOD, int(message.src))
            return False
        self.send(self.membership.receive(str(message.kind), message.me, message.listed, now))
        return True

    def reject(self, reason: RejectReason, sender: int | None) -> None:
        """Count a refused message under its reason (logged once per reason)."""
        if not self.rejects[reason]:
            log.warning("node %s: refused a message from %s: %s (further ones counted)", self.me.id, sender, reason)
        self.rejects[reason] += 1
        self.metrics.rejected(reason)

    # -- the clock -------------------------------------------------------------------------------

    async def clock(self) -> None:
        """Retries, the protocol's timers, closing stale sockets, and the metrics, every ``TICK_S``."""
        sweep_at = time.monotonic() + SWEEP_S
        while True:
            now = time.monotonic()
            self._resend()
            self.send(self.membership.tick(now))
            if now >= sweep_at:
                sweep_at = now + SWEEP_S
                known = {m.id for m in self.membership.known()}
                for peer in self.transport.peers():
                    if int(peer) not in known and (peer != -1 or len(self.membership.view) > 0):  # -1: our contact, once it answered
                        self.transport.disconnect(peer)
            self._report()
            await asyncio.sleep(TICK_S)

    def _report(self) -> None:
        counts = self.membership.counts
        for event in MembershipMetrics.EVENTS:
            delta = counts[event] - self._counted[event]
            if delta:
                self.events.happened(event, delta)
                self._counted[event] = counts[event]
        self.events.size(len(self.membership.view), len(self.membership.neighbours))

    def refresh_expectation(self) -> None:
        """Models are accepted from the current neighbours only."""
        linked = frozenset(self.membership.neighbours)
        if linked != self.expect.neighbours:
            self.expect = dataclasses.replace(self.expect, neighbours=linked)
