"""Open membership on one node, as a state machine without I/O: who its neighbours are, and what to tell whom.

The protocol (``docs/concepts/open-membership.md`` says it for users):

- **Join with one address.** A newcomer sends ``join`` to any member; the member takes it into its view and
  answers ``members`` (a sample of its view and itself). The newcomer fills its view from that answer, and asks
  again every ``failure_timeout_s`` until an answer comes (a lost join would leave it knowing nobody).
- **Views** are Cyclon's (:class:`~gossip.topology.cyclon.PartialView`): ``shuffle`` / ``shuffle_reply`` every
  ``shuffle_period_s`` spreads newcomers and forgets the dead.
- **Neighbours** are the links models travel on, symmetric and kept between ``degree`` and ``max_degree``: a
  node short of ``degree`` asks members drawn from its view (``link``); one with room says ``link_ok`` and both
  sides hold the link, a full one says ``link_no`` and names some of its neighbours instead. Each link carries
  a ``heartbeat`` every ``heartbeat_s``; a neighbour silent for ``failure_timeout_s`` is declared failed and
  replaced. A neighbour that still heartbeats to us after we dropped it is told ``unlink``.
- **Leaving.** ``leave`` tells each neighbour, with the leaver's other neighbours as replacements.

Why the links graph stays connected: every node holds at least ``degree`` links, and it draws them uniformly
from a view that Cyclon keeps close to a uniform sample of the members; a graph in which each vertex picks
k >= 2 others at random is connected with high probability (Fenner and Frieze 1982), and extra links only add
edges. Departures are repaired within a heartbeat timeout. ``bench/overlay.py`` measures it under churn.

Every method takes ``now`` (seconds) and returns the messages to send as :class:`Send`; the node does the
sending, the simulator delivers them in memory. Members named by peers are validated by the wire before they
get here (``gossip.net.wire``: sizes, ids, addresses inside the run's :class:`AddressPolicy`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gossip.topology.cyclon import PartialView
from gossip.topology.members import Member

__all__ = ["MAX_LISTED", "MEMBERSHIP_KINDS", "Membership", "MembershipSettings", "Send"]

# the membership messages; each is a header only (gossip.net.wire)
MEMBERSHIP_KINDS = (
    "join",
    "members",
    "shuffle",
    "shuffle_reply",
    "link",
    "link_ok",
    "link_no",
    "unlink",
    "heartbeat",
    "leave",
    "state_request",
)
MAX_LISTED = 16  # members one message may name (a peer's list is capped by the wire at this)


@dataclass(frozen=True)
class MembershipSettings:
    """The protocol's numbers (``[membership]`` in a run's config)."""

    degree: int = 3
    max_degree: int = 6
    view_size: int = 8
    shuffle_length: int = 4
    shuffle_period_s: float = 1.0
    heartbeat_s: float = 0.5
    failure_timeout_s: float = 3.0


@dataclass(frozen=True)
class Send:
    """One membership message for the node to send: ``kind`` to ``to``, naming ``members``."""

    to: Member
    kind: str
    members: tuple[Member, ...] = ()


class Membership:
    """One node's view, neighbours and failure detector (see the module). ``counts`` holds the events a node reports:
    ``joins`` (newcomers that joined through us), ``leaves``, ``failures``, ``neighbour_changes``, ``links_refused``."""

    def __init__(self, me: Member, settings: MembershipSettings, rng: random.Random) -> None:
        self.me = me
        self.settings = settings
        self.rng = rng
        self._gone: dict[int, float] = {}  # id -> until when it stays barred (left or failed)
        self._now = 0.0
        self.view = PartialView(me, settings.view_size, settings.shuffle_length, rng, barred=self._barred)
        self.neighbours: dict[int, Member] = {}
        self.last_heard: dict[int, float] = {}
        self._asked: dict[int, float] = {}  # link requests in flight: id -> when asked
        self._next_shuffle = 0.0
        self._next_heartbeat = 0.0
        self._next_join = 0.0  # when to ask the contact again while it has not answered
        self.counts: Counter[str] = Counter()
        self.contact: Member | None = None  # whom we joined through (id -1 when unknown), until a member answers

    # -- starting and stopping -------------------------------------------------------------------

    def join(self, contact_address: str, now: float, contact_id: int = -1) -> list[Send]:
        """Ask the member at ``contact_address`` to let us in (``contact_id``: its id when known, else -1)."""
        self._now = now
        self.contact = Member(contact_id, contact_address)
        self._next_join = now + self.settings.failure_timeout_s
        return [Send(self.contact, "join")]

    def leave(self) -> list[Send]:
        """Goodbye to every neighbour, naming the others as replacements."""
        out = []
        for member in self.neighbours.values():
            others = tuple(m for m in self.neighbours.values() if m.id != member.id)[:MAX_LISTED]
            out.append(Send(member, "leave", others))
        return out

    # -- time ------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Send]:
        """What is due at ``now``: failures declared, the join again if unanswered, heartbeats, a shuffle, link requests."""
        self._now = now
        s = self.settings
        out: list[Send] = []
        for j in [j for j, t in self.last_heard.items() if now - t > s.failure_timeout_s]:
            self._lost(j, "failures")
        for j in [j for j, t in self._asked.items() if now - t > s.failure_timeout_s]:
            del self._asked[j]  # never answered: gone, or our request was lost
            self.view.remove(j)
        for j in [j for j, until in self._gone.items() if until < now]:
            del self._gone[j]
        if self.contact is not None and now >= self._next_join:
            self._next_join = now + s.failure_timeout_s  # our join or its answer was lost: without one we know nobody
            out.append(Send(self.contact, "join"))
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + s.heartbeat_s
            out += [Send(m, "heartbeat") for m in self.neighbours.values()]
        if now >= self._next_shuffle:
            self._next_shuffle = now + s.shuffle_period_s * (0.5 + self.rng.random())  # jittered: shuffles do not synchronise
            started = self.view.start_shuffle()
            if started is not None:
                target, offered = started
                out.append(Send(target, "shuffle", tuple(offered)))
        return out + self.fill()

    def fill(self, prefer: Sequence[Member] = ()) -> list[Send]:
        """Link requests until ``degree`` links are held or asked for, drawn from ``prefer`` first, then the view."""
        out = []
        taken = set(self.neighbours) | set(self._asked) | {self.me.id}
        candidates = [m for m in prefer if m.id not in taken and not self._barred(m.id)]
        wanted = self.settings.degree - len(self.neighbours) - len(self._asked)
        if wanted > len(candidates):
            candidates += self.view.sample(wanted - len(candidates), exclude=taken | {m.id for m in candidates})
        for member in candidates[: max(0, wanted)]:
            self._asked[member.id] = self._now
            out.append(Send(member, "link"))
        return out

    # -- what arrived ----------------------------------------------------------------------------

    def heard(self, member_id: int, now: float) -> None:
        """Anything valid from ``member_id`` (a model too) shows it is alive."""
        if member_id in self.neighbours:
            self.last_heard[member_id] = now

    def receive(self, kind: str, sender: Member, members: Sequence[Member], now: float) -> list[Send]:
        """A validated membership message from ``sender``: what to send in return."""
        self._now = now
        self.heard(sender.id, now)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None or kind not in MEMBERSHIP_KINDS:
            raise ValueError(f"not a membership message: {kind!r}")
        result: list[Send] = handler(sender, [m for m in members if m.id != self.me.id])
        return result

    def _on_join(self, sender: Member, _members: list[Member]) -> list[Send]:
        self.counts["joins"] += 1
        sample = tuple(self.view.sample(MAX_LISTED - 1, exclude=(sender.id,)))
        self._gone.pop(sender.id, None)  # a member that left may come back under the same id
        self.view.add(sender)
        return [Send(sender, "members", (self.me, *sample))]

    def _on_members(self, sender: Member, members: list[Member]) -> list[Send]:
        if self.contact is None and sender.id not in self.view:
            return []  # an answer to a join we never sent
        self.contact = None
        for member in (sender, *members):
            self.view.add(member)
        return self.fill()

    def _on_shuffle(self, sender: Member, members: list[Member]) -> list[Send]:
        reply = self.view.answer_shuffle(sender, [m for m in members if m.id != sender.id])
        self.view.add(sender)  # the sender's fresh entry of itself
        return [Send(sender, "shuffle_reply", tuple(reply))]

    def _on_shuffle_reply(self, _sender: Member, members: list[Member]) -> list[Send]:
        self.view.take_answer(members)
        return []

    def _on_link(self, sender: Member, _members: list[Member]) -> list[Send]:
        if sender.id in self.neighbours:
            return [Send(sender, "link_ok")]
        if len(self.neighbours) >= self.settings.max_degree:
            self.counts["links_refused"] += 1
            others = tuple(self.rng.sample(sorted(self.neighbours.values()), min(MAX_LISTED, len(self.neighbours))))
            return [Send(sender, "link_no", others)]
        self._gone.pop(sender.id, None)
        self._asked.pop(sender.id, None)
        self._linked(sender)
        return [Send(sender, "link_ok")]

    def _on_link_ok(self, sender: Member, _members: list[Member]) -> list[Send]:
        if sender.id in self.neighbours:
            return []
        if self._asked.pop(sender.id, None) is None or len(self.neighbours) >= self.settings.max_degree:
            return [Send(sender, "unlink")]  # a link we did not ask for (or no longer have room for)
        self._linked(sender)
        return []

    def _on_link_no(self, sender: Member, members: list[Member]) -> list[Send]:
        self._asked.pop(sender.id, None)
        for member in members:
            self.view.add(member)
        return self.fill(prefer=members)

    def _on_unlink(self, sender: Member, _members: list[Member]) -> list[Send]:
        self._asked.pop(sender.id, None)
        if sender.id in self.neighbours:
            self._drop(sender.id)
        return self.fill()

    def _on_heartbeat(self, sender: Member, _members: list[Member]) -> list[Send]:
        if sender.id not in self.neighbours:
            return [Send(sender, "unlink")]  # it holds a link we dropped (we declared it failed): let it replace us
        return []

    def _on_leave(self, sender: Member, members: list[Member]) -> list[Send]:
        if sender.id in self.neighbours or sender.id in self.view:
            self.counts["leaves"] += 1
        self._forget(sender.id)
        for member in members:
            self.view.add(member)
        return self.fill(prefer=members)

    def _on_state_request(self, _sender: Member, _members: list[Member]) -> list[Send]:
        return []  # answered by the node with its model

    # -- bookkeeping -----------------------------------------------------------------------------

    def _linked(self, member: Member) -> None:
        self.neighbours[member.id] = member
        self.last_heard[member.id] = self._now
        self.view.add(member)
        self.counts["neighbour_changes"] += 1

    def _drop(self, member_id: int) -> None:
        del self.neighbours[member_id]
        self.last_heard.pop(member_id, None)
        self.counts["neighbour_changes"] += 1

    def _lost(self, member_id: int, why: str) -> None:
        self.counts[why] += 1
        self._forget(member_id)

    def _forget(self, member_id: int) -> None:
        """A member that left or failed: out of the links and the view, and not taken back for a while."""
        if member_id in self.neighbours:
            self._drop(member_id)
        self._asked.pop(member_id, None)
        self.view.remove(member_id)
        self._gone[member_id] = self._now + 4 * self.settings.failure_timeout_s

    def _barred(self, member_id: int) -> bool:
        return member_id in self._gone

    def known(self) -> Iterable[Member]:
        """Every member this node knows of: its neighbours and its view."""
        seen = dict(self.neighbours)
        for member in self.view.members():
            seen.setdefault(member.id, member)
        return seen.values()
