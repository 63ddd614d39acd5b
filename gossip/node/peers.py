"""A node's neighbours as peers: the handshake, hellos and welcomes, and where the node stands against them.

The handshake: say hello until every neighbour has answered with a welcome. A welcome is the proof we
need: it answers a hello that left through *our* link and came back through *theirs*, so both directions
are up before round 0 (with ``IMMEDIATE=1`` a model sent on a link that is not up yet would be dropped).

Catching up: a node resumed from a checkpoint (:meth:`Peers.rejoin_round`) or one that fell behind while
running (:meth:`Peers.catch_up`) skips to the round its live neighbours are in when that round is beyond
its inbox window, instead of replaying rounds whose models its neighbours no longer want. Who is alive and
which round each neighbour last showed is :class:`~gossip.node.liveness.Liveness`'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from gossip.errors import PeerUnreachable
from gossip.ids import NodeId
from gossip.net.wire import Kind
from gossip.node.core import NodeCore
from gossip.node.outbox import Outbox

__all__ = ["PROBE_EVERY_S", "REOPEN_EVERY_S", "WELCOME_WINDOW_S", "Peers"]

log = logging.getLogger("gossip.node")

PROBE_EVERY_S = 1.0  # a neighbour that is down gets a hello this often: it re-opens its link to us if it is alive
REOPEN_EVERY_S = 2.0  # a running node re-opens its link to a neighbour that says hello at most this often
WELCOME_WINDOW_S = 5.0  # a welcome counts this long (or two round timeouts) after our last hello to its sender


class Peers:
    """Hellos, welcomes, the handshake, and the rejoin/catch-up/skip-ahead rules of one node."""

    def __init__(self, core: NodeCore, outbox: Outbox) -> None:
        self.core = core
        self.outbox = outbox
        self.welcomed: set[NodeId] = set()  # neighbours that answered our hello: both link directions work
        self._hello_at: dict[NodeId, float] = {}  # when we last said hello to a neighbour: its welcome is due
        self._reopened_at: dict[NodeId, float] = {}  # when we last re-opened our link to a neighbour
        self.resumed: dict[str, int] | None = None  # {"checkpoint_round", "joined_round"} after a resume
        self.skipped: dict[str, int] | None = None  # {"from_round", "joined_round"} of a skip, for the next record

    # -------------------------------------------------------------------------------------------
    # hellos and welcomes

    async def handshake(self) -> None:
        """Say hello until every neighbour has answered with a welcome, or the deadline passes (see the module)."""
        core = self.core
        deadline = time.monotonic() + core.cfg.transport.startup_timeout_s
        pause = 0.05
        first_welcome: float | None = None
        while not core.stopping:
            missing = [j for j in core.neighbours if j not in self.welcomed]
            if not missing:
                return
            if self.welcomed and first_welcome is None:
                first_welcome = time.monotonic()
            # A resumed node joins a running network: a neighbour may be dead or done. One welcome plus
            # a round timeout of grace is enough; the round loop copes with absent neighbours.
            if (
                core.plan.resume is not None
                and first_welcome is not None
                and time.monotonic() - first_welcome > core.cfg.transport.round_timeout_s
            ):
                log.warning("node %s: rejoining without neighbour(s) %s (no welcome)", core.id, ", ".join(map(str, missing)))
                return
            if time.monotonic() > deadline:
                who = ", ".join(f"{j} ({core.cfg.transport.address_of(j)})" for j in missing)
                raise PeerUnreachable(
                    list(map(int, missing)),
                    f"node {core.id}: no answer from neighbour(s) {who} within {core.cfg.transport.startup_timeout_s:g} s "
                    f"(transport.startup_timeout_s); are they running, and do those names resolve from here?",
                )
            for j in missing:
                self.say_hello(j)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    def say_hello(self, peer: NodeId) -> None:
        """Greet ``peer``: its welcome is expected for a while (an unasked welcome is refused)."""
        self._hello_at[peer] = time.monotonic()
        self.outbox.say(Kind.HELLO, peer)

    def welcome_expected(self, peer: NodeId) -> bool:
        """Whether a welcome from ``peer`` answers a hello of ours recent enough."""
        asked = self._hello_at.get(peer)
        return asked is not None and time.monotonic() - asked <= max(WELCOME_WINDOW_S, 2 * self.core.cfg.transport.round_timeout_s)

    def probe_down(self) -> None:
        """Say hello to the neighbours that are down and silent, once every ``PROBE_EVERY_S``.

        A neighbour that is alive but whose models do not reach us (its link to us was taken over by
        an impostor without CURVE: the ROUTER handed the identity to the impostor, and the real
        neighbour's sends vanish) re-opens its link when greeted (see :meth:`greeted`); a dead one
        costs a send that fails at once. One we still hear (a straggler) is left alone.
        """
        now = time.monotonic()
        for j in self.core.liveness.silent(self.core.round):
            peer = NodeId(j)
            if now - self._hello_at.get(peer, -math.inf) >= PROBE_EVERY_S:
                self.say_hello(peer)

    def greeted(self, peer: NodeId) -> None:
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
            self.core.transport.drop_queued([peer])

    # -------------------------------------------------------------------------------------------
    # where the node stands: rejoin, catch up, skip ahead

    def rejoin_round(self, start: int) -> int:
        """After a resume: the round to continue at — the run's round if we are far behind.

        The run's round is the one ``gossip launch --resume`` agreed on (the latest checkpoint of the
        run, ``plan.join_round``) or, for a node restarted alone, the lowest round its live neighbours
        greeted us from (a welcome carries the round its sender is in; the lowest, so that one forged
        welcome cannot move us). Inside our inbox window (``max_rounds_ahead``) the node catches up in
        place: a few rounds alone, and the record stays contiguous (a whole-run resume, where every
        node restarts from about the same round); beyond it, replaying would leave our models stale
        for neighbours that moved on, so the node skips to that round (as :meth:`catch_up` does).
        """
        core = self.core
        if core.plan.resume is None:
            return start
        current = max(core.plan.join_round or start, core.liveness.ahead(core.inbox.gone) or start)
        joined = min(current, core.cfg.training.rounds) if self._far_behind(start, current) else start
        self.resumed = {"checkpoint_round": core.plan.resume.round, "joined_round": joined}
        if joined != start:
            log.warning(
                "node %s: the run is at round %d, %d rounds past our checkpoint: skipping to round %d",
                core.id,
                current,
                current - start,
                joined,
            )
            self._skip_to(joined)
        return joined

    def catch_up(self, t: int) -> int:
        """Before round ``t``: the round to run — a later one when every live neighbour is past our inbox window.

        A node that was paused (SIGSTOP, a long GC, a swapped-out host) or fell behind finds its
        neighbours' models refused as too far ahead; replaying the rounds in between would leave it
        behind for good, its models stale for everyone. It skips, like a resumed node, to the lowest
        round its live neighbours (not down, not gone) have shown, so one neighbour's claim alone —
        a forged one included — never moves a node whose other neighbours are at its round.
        """
        core = self.core
        target = core.liveness.ahead(core.inbox.gone)
        if target is None or not self._far_behind(t, target):
            return t
        target = min(target, core.cfg.training.rounds)
        log.warning(
            "node %s: every live neighbour is at round %d or later, %d rounds ahead of us: skipping to round %d",
            core.id,
            target,
            target - t,
            target,
        )
        self.skipped = {"from_round": t, "joined_round": target}
        self._skip_to(target)
        return target

    def _far_behind(self, t: int, target: int) -> bool:
        """Is ``target`` beyond the inbox window of round ``t`` — further ahead than the schedule lets a neighbour be?"""
        return target > self.core.horizon(t)

    def _skip_to(self, r: int) -> None:
        core = self.core
        core.round = r
        core.metrics.round.set(r)
        if core.choco is not None:  # neighbours missed our deltas of the rounds we skip: send in full
            core.choco.resync()
