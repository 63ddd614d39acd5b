"""An open network in memory: many :class:`~gossip.topology.membership.Membership` machines under churn, measured.

Why a simulation: whether the links graph stays connected while members come and go is a property of thousands
of nodes over minutes, which real processes on one machine cannot show. The state machines here are the very
ones a node runs; only the sockets are replaced by a queue that delivers each message ``latency_steps`` steps
later (or loses it, with probability ``loss``). Time advances in fixed steps of ``step_s``; at each step the
trace's events are applied, due messages delivered, then every live member ticks.

A trace is a list of :class:`ChurnEvent`: ``start`` (the first member, alone), ``join`` (a newcomer given the
address of one live member), ``leave`` (its goodbyes are sent, then it vanishes) and ``crash`` (it vanishes
silently). :func:`simulate` returns a :class:`Snapshot` of the overlay every ``sample_every_s``. Everything is
deterministic given the seeds. ``bench/overlay.py`` prints the figures.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx

from gossip.topology.members import Member
from gossip.topology.membership import Membership, MembershipSettings, Send

__all__ = [
    "ChurnEvent",
    "ChurnResult",
    "SimSettings",
    "Snapshot",
    "Stepper",
    "bootstrap_trace",
    "churn_trace",
    "healed_at",
    "mass_failure",
    "measure",
    "merge",
    "simulate",
]

EventKind = Literal["start", "join", "leave", "crash"]


@dataclass(frozen=True)
class ChurnEvent:
    """At ``time_s``, ``node`` starts, joins (through ``contact``; -1: a random live member), leaves or crashes."""

    time_s: float
    kind: EventKind
    node: int
    contact: int = -1


@dataclass(frozen=True)
class SimSettings:
    """The simulated network: the protocol's numbers, the clock, the links' latency and loss, the seed."""

    membership: MembershipSettings = field(default_factory=MembershipSettings)
    step_s: float = 0.1  # the clock's resolution; every live member ticks once a step
    latency_steps: int = 1  # a message sent in one step is delivered this many steps later
    loss: float = 0.0  # the probability that a message is lost
    sample_every_s: float = 10.0
    settle_s: float = 5.0  # a member that joined less than this ago is a newcomer, still finding its links
    seed: int = 0


@dataclass(frozen=True)
class Snapshot:
    """The overlay at one moment: the links graph over live members and the views (see :func:`measure`)."""

    time_s: float
    live: int
    connected: bool  # the links graph (undirected, over live members) is one component
    settled_connected: bool  # the members that joined at least ``settle_s`` ago are all in one component
    newcomers: int  # members that joined less than ``settle_s`` ago
    components: int
    largest_fraction: float  # of the live members, in the largest component
    degree_min: int  # links to live members a member holds
    degree_mean: float
    degree_max: int
    below_degree: int  # members holding fewer links than the target ``degree``
    longest_below_s: float  # the longest a live member has been below ``degree`` without a break (a newcomer: since joining)
    isolated: int  # members with no link at all in the undirected graph
    dangling: int  # links held to members that are gone
    one_sided: int  # links held by one end only
    view_in_min: int  # how many live members' views hold each live member
    view_in_mean: float
    view_in_max: int
    stale_view: int  # view entries naming members that are gone


@dataclass(frozen=True)
class ChurnResult:
    """What :func:`simulate` saw: the snapshots, the members' summed ``counts``, messages sent by kind."""

    snapshots: tuple[Snapshot, ...]
    counts: dict[str, int]
    messages: dict[str, int]
    lost: int  # messages lost on the way (``loss``)
    to_gone: int  # messages addressed to members that were gone
    ignored: int  # trace events for members not live (or already live)


# -- traces ----------------------------------------------------------------------------------------


def bootstrap_trace(n: int, *, contact: int = 0, spread_s: float = 0.0, seed: int = 0) -> list[ChurnEvent]:
    """Member ``contact`` starts alone at 0; members 0..n-1 but it join through its address alone, at times
    drawn uniformly in [0, ``spread_s``] (all at once with 0)."""
    rng = random.Random(seed)
    joins = [ChurnEvent(rng.uniform(0.0, spread_s), "join", i, contact) for i in range(n) if i != contact]
    return [ChurnEvent(0.0, "start", contact), *sorted(joins, key=lambda e: e.time_s)]


def churn_trace(
    n: int, rate: float, period_s: float, seed: int, *, start_s: float = 0.0, until_s: float = 300.0, graceful: float = 0.5
) -> Iterator[ChurnEvent]:
    """Members 0..n-1 live at ``start_s``; every ``period_s`` a ``rate`` fraction of the live members departs (a
    ``graceful`` fraction leaving, the rest crashing) at uniform times within the period, each replaced at once by a
    newcomer (ids n, n+1, ...) given one random live member's address. Deterministic given ``seed``."""
    rng = random.Random(seed)
    live = list(range(n))
    next_id = n
    per_period = round(rate * n)
    t0 = start_s
    while t0 < until_s:
        leaving = round(graceful * per_period)
        kinds: list[EventKind] = ["leave" if k < leaving else "crash" for k in range(per_period)]
        rng.shuffle(kinds)
        times = sorted(rng.uniform(t0, t0 + period_s) for _ in kinds)
        for t, kind in zip(times, kinds, strict=True):
            if t >= until_s or len(live) < 2:
                return
            gone = live.pop(rng.randrange(len(live)))
            yield ChurnEvent(t, kind, gone)
            yield ChurnEvent(t, "join", next_id, rng.choice(live))
            live.append(next_id)
            next_id += 1
        t0 += period_s


def merge(*traces: Iterable[ChurnEvent]) -> Iterator[ChurnEvent]:
    """The events of several traces in time order; at equal times, those of an earlier trace first."""
    return heapq.merge(*traces, key=lambda e: e.time_s)


def mass_failure(members: Sequence[int], fraction: float, at_s: float, seed: int) -> list[ChurnEvent]:
    """A ``fraction`` of ``members``, drawn at random, crash together at ``at_s``."""
    rng = random.Random(seed)
    return [ChurnEvent(at_s, "crash", i) for i in sorted(rng.sample(list(members), round(fraction * len(members))))]


# -- measuring -------------------------------------------------------------------------------------


def measure(
    nodes: Mapping[int, Membership],
    now: float,
    *,
    joined: Mapping[int, float] | None = None,
    below_since: Mapping[int, float] | None = None,
    settle_s: float = 5.0,
) -> Snapshot:
    """The overlay of the live ``nodes``: its links graph (a link held by either end counts, ends both live) and views.
    ``joined`` (when each member joined) tells newcomers, younger than ``settle_s``, from settled members; ``below_since``
    (since when each member below its degree has been so) gives the longest such stretch."""
    live = set(nodes)
    joined = joined or {}
    settled = {i for i in live if now - joined.get(i, -settle_s) >= settle_s}
    target = min((m.settings.degree for m in nodes.values()), default=0)
    graph: nx.Graph[int] = nx.Graph()
    graph.add_nodes_from(live)
    degrees, dangling, one_sided, stale = [], 0, 0, 0
    view_in: Counter[int] = Counter()
    for i, member in nodes.items():
        held = [j for j in member.neighbours if j in live]
        dangling += len(member.neighbours) - len(held)
        one_sided += sum(1 for j in held if i not in nodes[j].neighbours)
        degrees.append(len(held))
        graph.add_edges_from((i, j) for j in held)
        for entry in member.view.members():
            if entry.id in live:
                view_in[entry.id] += 1
            else:
                stale += 1
    components = list(nx.connected_components(graph))
    parts = [len(c) for c in components]
    inward = [view_in[i] for i in live] or [0]
    degrees = degrees or [0]
    return Snapshot(
        time_s=now,
        live=len(live),
        connected=len(parts) == 1,
        settled_connected=sum(1 for c in components if c & settled) <= 1,
        newcomers=len(live) - len(settled),
        components=len(parts),
        largest_fraction=max(parts, default=0) / max(1, len(live)),
        degree_min=min(degrees),
        degree_mean=sum(degrees) / len(degrees),
        degree_max=max(degrees),
        below_degree=sum(1 for d in degrees if d < target),
        longest_below_s=max((now - t for i, t in (below_since or {}).items() if i in live), default=0.0),
        isolated=sum(1 for i in live if graph.degree[i] == 0),
        dangling=dangling,
        one_sided=one_sided,
        view_in_min=min(inward),
        view_in_mean=sum(inward) / len(inward),
        view_in_max=max(inward),
        stale_view=stale,
    )


def healed_at(snapshots: Iterable[Snapshot], after_s: float) -> float | None:
    """The first snapshot time from ``after_s`` on at which the overlay is whole again: connected, every member at
    its degree, no link to a member that is gone; ``None`` when it never is."""
    for s in snapshots:
        if s.time_s >= after_s and s.connected and s.below_degree == 0 and s.dangling == 0:
            return s.time_s
    return None


# -- simulating ------------------------------------------------------------------------------------


def _address(node: int) -> str:
    return f"tcp://10.0.{node // 250}.{node % 250 + 1}:7000"


class _Network:
    """The live members and the messages in flight between them."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.nodes: dict[int, Membership] = {}
        self.by_address: dict[str, int] = {}
        self.joined: dict[int, float] = {}
        self.below_since: dict[int, float] = {}  # members below their degree: since when, without a break
        self.departed_counts: Counter[str] = Counter()
        self.in_flight: dict[int, list[tuple[Member, Send]]] = {}
        self.messages: Counter[str] = Counter()
        self.lost = self.to_gone = self.ignored = 0

    def send(self, sender: Member, sends: Iterable[Send], step: int) -> None:
        due = self.in_flight.setdefault(step + self.settings.latency_steps, [])
        for s in sends:
            self.messages[s.kind] += 1
            due.append((sender, s))

    def apply(self, event: ChurnEvent, step: int, now: float) -> None:
        live = event.node in self.nodes
        if (event.kind in ("start", "join")) == live:
            self.ignored += 1
            return
        if event.kind in ("start", "join"):
            me = Member(event.node, _address(event.node))
            member = Membership(me, self.settings.membership, random.Random(f"{self.settings.seed}:{event.node}"))
            if event.kind == "join":
                if not self.nodes:
                    self.ignored += 1
                    return
                contact = event.contact if event.contact in self.nodes else self.rng.choice(sorted(self.nodes))
                self.send(me, member.join(_address(contact), now), step)
            self.nodes[event.node] = member
            self.by_address[me.address] = event.node
            self.joined[event.node] = now
            return
        member = self.nodes.pop(event.node)
        del self.by_address[member.me.address]
        self.below_since.pop(event.node, None)
        self.departed_counts.update(member.counts)
        if event.kind == "leave":
            self.send(member.me, member.leave(), step)

    def deliver(self, step: int, now: float) -> None:
        for sender, s in self.in_flight.pop(step, []):
            target = self.nodes.get(s.to.id if s.to.id >= 0 else self.by_address.get(s.to.address, -1))
            if target is None:
                self.to_gone += 1
            elif self.settings.loss and self.rng.random() < self.settings.loss:
                self.lost += 1
            else:
                self.send(target.me, target.receive(s.kind, sender, s.members, now), step)

    def tick(self, step: int, now: float) -> None:
        """Every live member's timers; then who is below its degree, and since when."""
        for i, member in list(self.nodes.items()):
            self.send(member.me, member.tick(now), step)
            if sum(1 for j in member.neighbours if j in self.nodes) < member.settings.degree:
                self.below_since.setdefault(i, now)
            else:
                self.below_since.pop(i, None)

    def snapshot(self, now: float) -> Snapshot:
        return measure(self.nodes, now, joined=self.joined, below_since=self.below_since, settle_s=self.settings.settle_s)


class Stepper:
    """:func:`simulate`'s clock, one step at a time, for a caller that does its own work between steps (models that
    train on the links, ``gossip simulate`` of an open network): ``step(k)`` applies the trace's events due by then,
    delivers the messages due and ticks every live member; ``nodes`` are the live members' machines."""

    def __init__(self, trace: Iterable[ChurnEvent], settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.net = _Network(self.settings)
        self._events = iter(trace)
        self._pending = next(self._events, None)

    @property
    def nodes(self) -> dict[int, Membership]:
        return self.net.nodes

    def step(self, step: int) -> float:
        """Advance to step ``step`` (the steps in order); returns its time, ``step * step_s``."""
        now = step * self.settings.step_s
        while self._pending is not None and self._pending.time_s < now + self.settings.step_s:
            self.net.apply(self._pending, step, now)
            self._pending = next(self._events, None)
        self.net.deliver(step, now)
        self.net.tick(step, now)
        return now

    def snapshot(self, now: float) -> Snapshot:
        return self.net.snapshot(now)


def simulate(trace: Iterable[ChurnEvent], until_s: float, settings: SimSettings | None = None) -> ChurnResult:
    """Run ``trace`` (in time order) on an in-memory network until ``until_s``; a snapshot every ``sample_every_s``."""
    settings = settings or SimSettings()
    stepper = Stepper(trace, settings)
    net = stepper.net
    snapshots = []
    next_sample = 0.0
    for step in range(int(until_s / settings.step_s) + 1):
        now = stepper.step(step)
        if now >= next_sample - 1e-9:
            snapshots.append(net.snapshot(now))
            next_sample += settings.sample_every_s
    counts = net.departed_counts + sum((m.counts for m in net.nodes.values()), Counter())
    return ChurnResult(
        tuple(snapshots), dict(sorted(counts.items())), dict(sorted(net.messages.items())), net.lost, net.to_gone, net.ignored
    )
