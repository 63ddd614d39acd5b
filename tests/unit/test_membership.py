"""The open-membership state machine: joining through one address, symmetric links between degree and max_degree,
refusals with alternatives, failure detection, graceful leaves, and a connected overlay under churn."""

from __future__ import annotations

import random

from gossip.topology.churn import SimSettings, bootstrap_trace, churn_trace, merge, simulate
from gossip.topology.members import Member
from gossip.topology.membership import Membership, MembershipSettings, Send

SETTINGS = MembershipSettings()  # degree 3, max_degree 6, heartbeat 0.5 s, failure timeout 3 s
STEP_S = 0.25


def member(i: int) -> Member:
    return Member(i, f"tcp://10.0.{i // 250}.{i % 250 + 1}:7000")


def machine(i: int, settings: MembershipSettings = SETTINGS) -> Membership:
    return Membership(member(i), settings, random.Random(i))


class Net:
    """Membership machines whose messages are delivered at once, in order (the test's stand-in for the sockets)."""

    def __init__(self) -> None:
        self.nodes: dict[int, Membership] = {}
        self.now = 0.0
        self.sent: list[tuple[int, Send]] = []  # everything delivered: (sender, message)

    def deliver(self, sender: Member, sends: list[Send]) -> None:
        queue = [(sender, s) for s in sends]
        while queue:
            frm, s = queue.pop(0)
            self.sent.append((frm.id, s))
            to = next((n for n in self.nodes.values() if n.me.address == s.to.address), None)
            if to is not None:
                queue += [(to.me, r) for r in to.receive(s.kind, frm, s.members, self.now)]

    def join(self, i: int, contact: int) -> Membership:
        node = self.nodes[i] = machine(i)
        self.deliver(node.me, node.join(member(contact).address, self.now))
        return node

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP_S)):
            self.now += STEP_S
            for node in list(self.nodes.values()):
                self.deliver(node.me, node.tick(self.now))


def network(n: int, settle_s: float = 20.0) -> Net:
    """n members that joined through member 0 and had ``settle_s`` to find their links."""
    net = Net()
    net.nodes[0] = machine(0)
    for i in range(1, n):
        net.join(i, 0)
    net.run(settle_s)
    return net


def test_a_newcomer_joining_through_one_contact_ends_with_degree_links() -> None:
    """Given one member's address only, a newcomer learns members from it and holds degree links within seconds."""
    net = network(20)

    newcomer = net.join(99, contact=7)
    net.run(3.0)

    assert SETTINGS.degree <= len(newcomer.neighbours) <= SETTINGS.max_degree
    assert len(newcomer.view) > 1


def test_a_newcomer_whose_join_went_unanswered_asks_its_contact_again() -> None:
    """A lost join (or a lost answer) would leave a newcomer knowing nobody: it asks again each failure timeout,
    and stops once a member has answered."""
    newcomer = machine(9)
    newcomer.join(member(0).address, 0.0)

    early = newcomer.tick(SETTINGS.failure_timeout_s - 0.1)
    again = newcomer.tick(SETTINGS.failure_timeout_s + 0.1)
    newcomer.receive("members", member(0), [member(1)], SETTINGS.failure_timeout_s + 0.2)
    answered = newcomer.tick(3 * SETTINGS.failure_timeout_s)

    assert not any(s.kind == "join" for s in early)
    assert Send(Member(-1, member(0).address), "join") in again
    assert not any(s.kind == "join" for s in answered)


def test_every_newcomer_gets_in_when_messages_are_lost() -> None:
    """With 10 % of all messages lost, every member of a 100-member bootstrap ends linked into one component."""
    result = simulate(bootstrap_trace(100), 40.0, SimSettings(step_s=0.5, sample_every_s=10.0, loss=0.1, seed=3))

    last = result.snapshots[-1]
    assert result.lost > 0
    assert last.connected and last.isolated == 0
    assert last.longest_below_s < 4 * SETTINGS.failure_timeout_s


def test_links_are_symmetric_and_between_degree_and_max_degree() -> None:
    """Every link is held by both ends, and every member holds degree to max_degree of them."""
    net = network(30)

    for i, node in net.nodes.items():
        assert SETTINGS.degree <= len(node.neighbours) <= SETTINGS.max_degree
        assert all(i in net.nodes[j].neighbours for j in node.neighbours)


def test_a_link_request_to_a_full_member_gets_link_no_with_alternatives_and_the_asker_links_elsewhere() -> None:
    """A member at max_degree refuses (counting it) and names its neighbours; the asker asks one of them next."""
    full = machine(0)
    for j in range(1, SETTINGS.max_degree + 1):
        assert full.receive("link", member(j), [], 0.0) == [Send(member(j), "link_ok")]
    asker = machine(50)

    (answer,) = full.receive("link", asker.me, [], 0.0)
    asker.fill(prefer=[full.me])  # the asker's request in flight
    follow_up = asker.receive(answer.kind, full.me, answer.members, 0.0)

    assert answer.kind == "link_no" and full.counts["links_refused"] == 1
    assert {m.id for m in answer.members} == set(range(1, SETTINGS.max_degree + 1))
    assert follow_up and all(s.kind == "link" and s.to.id in range(1, SETTINGS.max_degree + 1) for s in follow_up)


def test_a_neighbour_silent_for_the_failure_timeout_is_declared_failed_and_replaced() -> None:
    """A crashed neighbour is declared failed (counts['failures']) after failure_timeout_s and another link taken."""
    net = network(20)
    watcher = net.nodes[5]
    crashed = next(iter(watcher.neighbours))
    del net.nodes[crashed]

    net.run(SETTINGS.failure_timeout_s + 2.0)

    assert watcher.counts["failures"] == 1
    assert crashed not in watcher.neighbours
    assert len(watcher.neighbours) >= SETTINGS.degree


def test_a_graceful_leave_names_replacements_and_the_neighbours_relink() -> None:
    """leave() tells each neighbour the leaver's other neighbours; each counts the leave and is back at its degree."""
    net = network(20)
    leaver = net.nodes.pop(4)
    goodbyes = leaver.leave()
    before = set(leaver.neighbours)

    net.deliver(leaver.me, goodbyes)
    net.run(2.0)

    assert {s.to.id for s in goodbyes} == before
    assert all({m.id for m in s.members} == before - {s.to.id} for s in goodbyes)
    for j in before:
        assert net.nodes[j].counts["leaves"] == 1
        assert 4 not in net.nodes[j].neighbours
        assert len(net.nodes[j].neighbours) >= SETTINGS.degree


def test_a_failed_member_is_not_taken_back_into_a_view_for_a_while() -> None:
    """After declaring a member failed, a node refuses it from shuffles until the bar (4 failure timeouts) ends."""
    node = machine(0)
    node.receive("link", member(1), [], 0.0)
    node.tick(SETTINGS.failure_timeout_s + 0.1)  # 1 never heard from again
    assert node.counts["failures"] == 1

    node.receive("shuffle_reply", member(2), [member(1), member(3)], SETTINGS.failure_timeout_s + 1.0)
    assert 1 not in node.view and 3 in node.view

    later = 5 * SETTINGS.failure_timeout_s + 1.0
    node.tick(later)
    node.receive("shuffle", member(2), [member(1)], later)

    assert 1 in node.view  # the bar has ended


def test_a_heartbeat_from_a_dropped_neighbour_is_answered_with_unlink() -> None:
    """A member still heartbeating to a node that dropped it is told unlink, and then drops its side too."""
    node, other = machine(0), machine(1)
    assert node.receive("heartbeat", other.me, [], 0.0) == [Send(other.me, "unlink")]

    other.receive("link", node.me, [], 0.0)
    other.receive("unlink", node.me, [], 0.1)
    assert 0 not in other.neighbours


def test_two_hundred_members_under_churn_stay_connected() -> None:
    """200 members, a fifth of them replaced within 40 s (half leaving, half crashing): the settled members stay in one
    component and no member stays below its degree for longer than a few failure timeouts."""
    trace = merge(bootstrap_trace(200), churn_trace(200, 0.1, 20.0, seed=1, start_s=15.0, until_s=55.0))

    result = simulate(trace, 55.0, SimSettings(step_s=0.5, sample_every_s=2.5, seed=1))

    later = [s for s in result.snapshots if s.time_s >= 10.0]
    assert all(s.settled_connected for s in later)
    assert all(s.largest_fraction >= 0.98 for s in later)
    assert max(s.longest_below_s for s in later) < 4 * SETTINGS.failure_timeout_s
    assert result.counts["failures"] > 0 and result.counts["leaves"] > 0
