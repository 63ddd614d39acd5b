"""Cyclon's partial view: bounded, never its owner, a shuffle with the oldest entry that offers the owner."""

from __future__ import annotations

import random

from gossip.topology.cyclon import PartialView
from gossip.topology.members import Member


def member(i: int) -> Member:
    return Member(i, f"tcp://10.0.0.{i % 250 + 1}:{7000 + i}")


def view(size: int = 4, length: int = 2, seed: int = 0, owner: int = 0) -> PartialView:
    return PartialView(member(owner), size, length, random.Random(seed))


def test_a_view_never_holds_more_than_its_size() -> None:
    """Adds, shuffle answers and taken answers beyond the size all leave the view at its size."""
    v = view(size=4)
    for i in range(1, 20):
        v.add(member(i))
        v.answer_shuffle(member(100 + i), [member(200 + i), member(300 + i)])
        started = v.start_shuffle()
        assert started is not None
        v.take_answer([member(400 + i), member(500 + i), member(600 + i)])
        assert len(v) <= 4


def test_a_view_never_holds_its_owner() -> None:
    """The owner named by add, by a shuffle, or by an answer is never taken in."""
    v = view(size=4, owner=7)
    v.add(member(7))
    v.answer_shuffle(member(1), [member(7), member(2)])
    v.start_shuffle()
    v.take_answer([member(7), member(3)])

    assert 7 not in v
    assert all(m.id != 7 for m in v.members())


def test_a_shuffle_takes_the_oldest_entry_out_and_offers_the_owner_first() -> None:
    """start_shuffle ages every entry, removes the oldest and sends it the owner plus length - 1 others."""
    v = view(size=4, length=3, owner=0)
    v.add(member(1))
    v.start_shuffle()  # 1 is the only entry: taken out
    for i in (2, 3, 4):
        v.add(member(i))
    v.start_shuffle()  # 2, 3, 4 all of age 1 after this, one of them taken out
    v.add(member(5))  # age 0: the youngest

    started = v.start_shuffle()

    assert started is not None
    target, offered = started
    assert target.id in (2, 3, 4)  # an entry of the greatest age, never the newcomer 5
    assert target.id not in v
    assert offered[0] == member(0)
    assert len(offered) == 3 and target not in offered[1:]


def test_ties_for_the_oldest_entry_are_drawn_at_random_not_by_id() -> None:
    """With equal ages, different seeds shuffle with different members: a fixed tie-break by id would always spare
    the low ids, and the views would pile up on them."""
    targets = set()
    for seed in range(20):
        v = view(size=8, length=2, seed=seed)
        for i in range(1, 9):
            v.add(member(i))
        started = v.start_shuffle()
        assert started is not None
        targets.add(started[0].id)

    assert len(targets) > 3


def test_a_barred_member_is_not_taken_in() -> None:
    """A member the owner knows to be gone (barred) is refused by add and by shuffles."""
    v = PartialView(member(0), 4, 2, random.Random(0), barred=lambda i: i == 9)
    v.add(member(9))
    v.answer_shuffle(member(1), [member(9)])

    assert 9 not in v
