"""A node's partial view of an open network, kept fresh by Cyclon shuffles (Voulgaris, Gavidia, van Steen 2005).

Each node holds at most ``size`` entries (a member and its age). Every shuffle period it ages them all, takes
the oldest entry Q *out* of its view, and sends Q ``length - 1`` random entries plus a fresh entry for itself;
Q answers with up to ``length`` random entries of its own and keeps what it was sent in the slots of what it
answered with. Both sides drop entries that name themselves or that they already hold.

Why this shape: a dead member is the oldest entry somewhere sooner or later and is then removed by the very
node that would have shuffled with it, so no failure detector is needed to clean views; every shuffle puts a
fresh entry of its sender into another view, so a newcomer spreads; and the views converge to an overlay close
to a random graph of out-degree ``size`` (low clustering, in-degrees concentrated around ``size``), which is
what keeps it connected with high probability under churn (the paper's section 5; measured by
``bench/overlay.py``). The class does no I/O: the node sends what it returns.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import cast

from gossip.topology.members import Member

__all__ = ["PartialView"]


class PartialView:
    """At most ``size`` members other than ``me``, with ages (see the module)."""

    def __init__(
        self, me: Member, size: int, length: int, rng: random.Random, *, barred: Callable[[int], bool] = lambda _id: False
    ) -> None:
        if not 1 <= length <= size:
            raise ValueError("the shuffle length must be in 1..size")
        self.me = me
        self.size = size
        self.length = length
        self.rng = rng
        self.barred = barred  # ids never taken in (members known to have left or failed, for a while)
        self._entries: dict[int, list[Member | int]] = {}  # id -> [member, age]
        self._sent: list[int] = []  # ids offered in our last shuffle: the slots its answer may take

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, member_id: int) -> bool:
        return member_id in self._entries

    def members(self) -> list[Member]:
        """The members in the view, by id."""
        return [entry[0] for _id, entry in sorted(self._entries.items())]  # type: ignore[misc]

    def age_of(self, member_id: int) -> int:
        return int(self._entries[member_id][1])  # type: ignore[arg-type]

    def get(self, member_id: int) -> Member | None:
        entry = self._entries.get(member_id)
        return entry[0] if entry is not None else None  # type: ignore[return-value]

    def add(self, member: Member) -> bool:
        """Take a member in with age 0 (a newcomer, a contact): into a free slot, else over the oldest entry."""
        if not self._admissible(member):
            return member.id in self._entries and self._refresh(member)
        if len(self._entries) >= self.size:
            del self._entries[self._oldest()]
        self._entries[member.id] = [member, 0]
        return True

    def remove(self, member_id: int) -> None:
        self._entries.pop(member_id, None)

    def sample(self, k: int, *, exclude: Iterable[int] = ()) -> list[Member]:
        """Up to ``k`` members drawn uniformly without replacement, none of ``exclude``."""
        skip = set(exclude)
        pool = [i for i in sorted(self._entries) if i not in skip]
        return [self._entries[i][0] for i in self.rng.sample(pool, min(k, len(pool)))]  # type: ignore[misc]

    def start_shuffle(self) -> tuple[Member, list[Member]] | None:
        """Age every entry, take the oldest out: (whom to shuffle with, what to send it), or ``None`` when empty."""
        if not self._entries:
            return None
        for entry in self._entries.values():
            entry[1] = cast(int, entry[1]) + 1
        oldest = self._oldest()
        target: Member = self._entries.pop(oldest)[0]  # type: ignore[assignment]
        offered = self.sample(self.length - 1, exclude=(oldest,))
        self._sent = [m.id for m in offered]
        return target, [self.me, *offered]

    def answer_shuffle(self, sender: Member, offered: Iterable[Member]) -> list[Member]:
        """A shuffle from ``sender``: the entries to answer with; ``offered`` taken in, in their slots."""
        reply = self.sample(self.length, exclude=(sender.id,))
        self._merge(offered, [m.id for m in reply])
        return reply

    def take_answer(self, answered: Iterable[Member]) -> None:
        """The answer to our last shuffle: taken into free slots, then into the slots of what we sent."""
        self._merge(answered, self._sent)
        self._sent = []

    def _merge(self, received: Iterable[Member], replaceable: list[int]) -> None:
        slots = [i for i in replaceable if i in self._entries]
        for member in received:
            if not self._admissible(member):
                continue
            if len(self._entries) < self.size:
                self._entries[member.id] = [member, 0]
            elif slots:
                del self._entries[slots.pop()]
                self._entries[member.id] = [member, 0]

    def _oldest(self) -> int:
        """The id of an oldest entry, ties drawn at random: a fixed tie-break (by id) would spare the same members
        every time, and the views would pile up on them."""
        age = max(int(entry[1]) for entry in self._entries.values())  # type: ignore[arg-type]
        return self.rng.choice([i for i in sorted(self._entries) if self._entries[i][1] == age])

    def _admissible(self, member: Member) -> bool:
        return member.id != self.me.id and member.id not in self._entries and not self.barred(member.id)

    def _refresh(self, member: Member) -> bool:
        """A member we hold, seen again first-hand: its age back to 0 and its address as it now says."""
        self._entries[member.id] = [member, 0]
        return True
