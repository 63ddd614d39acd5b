"""Link emulation by the sending node: delay, jitter, loss and bandwidth per edge, with no root and no kernel.

Why in the sender, in user space: ``tc netem`` needs root and a kernel module that many machines (this
one included) do not have, and it shapes whole interfaces, not graph edges. Here each node shapes its
own out-links, from the edge attributes of the topology (``delay_ms``, ``jitter_ms``, ``loss``,
``bandwidth_mbit``, as in ``topologies/wan-8.graphml``) or the ``[links]`` defaults, so a WAN
experiment runs anywhere, reproducibly. The kernel-level equivalents (iptables loss, tc tbf, a delaying
relay) are exercised in ``tests/e2e/test_netfaults.py`` to check that the two behave alike.

Model of a link, per message of ``size`` bytes sent at time ``now``:

- **loss**: dropped with probability ``loss`` (a generator seeded by (run seed, sender, receiver), so a run
  is reproducible); the sender cannot tell, like a packet lost on the wire, and :attr:`LinkEmulator.dropped`
  counts it;
- **bandwidth**: the link is a FIFO serialiser: the message leaves at ``max(now, link free) + size * 8 / rate``;
- **delay and jitter**: it then arrives ``delay ± U(jitter)`` later (never negative), but never before the
  previous message on the same link: a link is one TCP connection, which does not reorder (a model
  overtaken by the sender's bye would be lost for nothing).

The delayed hand-over to the real transport is an event-loop timer (``call_at``), so the node never
blocks. The caller's frames must stay unchanged until then — the node already sends snapshots for
ZeroMQ's zero-copy sends. A message the real transport refuses when its time comes (peer down) is
counted in :attr:`LinkEmulator.refused`. Closing waits for what is still in flight (up to ``FLUSH_S``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gossip.config import LinksConfig, check_link_value
from gossip.errors import ConfigError, TopologyError
from gossip.ids import NodeId
from gossip.net.transport import Received, Transport
from gossip.seeds import link_seed
from gossip.topology import Topology

__all__ = ["LinkEmulator", "LinkSpec", "emulate_links", "link_specs"]

_KEYS = ("delay_ms", "jitter_ms", "loss", "bandwidth_mbit")
FLUSH_S = 5.0  # longest a closing node waits for its delayed messages to leave


@dataclass(frozen=True)
class LinkSpec:
    """One directed link's behaviour."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    bandwidth_mbit: float = 0.0  # 0 = unlimited

    @property
    def active(self) -> bool:
        return any((self.delay_ms, self.jitter_ms, self.loss, self.bandwidth_mbit))


def link_specs(me: int, topology: Topology, cfg: LinksConfig) -> dict[NodeId, LinkSpec]:
    """The spec of each of ``me``'s out-links: the edge's attributes (when enabled), else ``cfg``'s values.

    An edge's attribute must lie in the range ``[links]`` allows for the same key (see
    :func:`gossip.config.check_link_value`): a file cannot make a link that holds a run up for hours.
    """
    out: dict[NodeId, LinkSpec] = {}
    for j in topology.neighbours(me):
        attrs = topology.edge_attributes(me, j) if cfg.enabled else {}
        values: dict[str, float] = {}
        for key in _KEYS:
            raw = attrs.get(key, getattr(cfg, key))
            if isinstance(raw, str):  # GraphML and edge-list attributes may arrive as text
                try:
                    raw = float(raw)
                except ValueError:
                    pass
            try:
                values[key] = check_link_value(key, raw, f"edge ({me}, {j}): {key}")
            except ConfigError as exc:
                raise TopologyError(str(exc)) from None
        spec = LinkSpec(**values)
        if spec.active:
            out[NodeId(j)] = spec
    return out


class LinkEmulator:
    """A :class:`~gossip.net.transport.Transport` that shapes sends to some peers, then hands them to ``inner``.

    Not zero-copy: a delayed message's frames wait in Python until their time comes, so the sender hands
    over a snapshot, never a buffer it writes next (and never a tracked live vector to release).
    """

    zero_copy = False

    def __init__(self, inner: Transport, me: int, specs: Mapping[NodeId, LinkSpec], *, seed: int = 0) -> None:
        self.inner = inner
        self.me = me
        self.specs = dict(specs)
        self._rng = {j: random.Random(link_seed(seed, me, int(j))) for j in self.specs}
        self._free_at: dict[NodeId, float] = {}  # when each link's serialiser is idle again (loop time)
        self._last_arrival: dict[NodeId, float] = {}  # FIFO per link, like the TCP connection under it
        self._pending: set[asyncio.TimerHandle] = set()
        self.dropped = 0  # messages lost by emulated loss
        self.refused = 0  # delayed messages the real transport refused when their time came

    @property
    def in_memory(self) -> tuple[int, int]:
        return self.inner.in_memory

    def __getattr__(self, name: str) -> Any:  # bound_address, on_unauthenticated, allow, ...: the real transport's
        return getattr(self.inner, name)

    async def start(self) -> None:
        await self.inner.start()

    def connect(self, peer: NodeId, address: str) -> None:
        self.inner.connect(peer, address)

    def drop_queued(self, peers: Sequence[NodeId]) -> None:
        """Nothing: the messages of an emulated link wait in its timers, which re-opening the real links would not
        clear, and a node behind link emulation re-opens no links (its sends are snapshots it never has to release)."""

    async def recv(self) -> Received:
        return await self.inner.recv()

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        spec = self.specs.get(peer)
        if spec is None:
            return self.inner.send(peer, frames)
        rng = self._rng[peer]
        if spec.loss and rng.random() < spec.loss:
            self.dropped += 1
            return True  # lost on the wire: the sender cannot tell
        loop = asyncio.get_running_loop()
        now = loop.time()
        depart = now
        if spec.bandwidth_mbit:
            size = sum(memoryview(f).nbytes for f in frames)
            depart = max(now, self._free_at.get(peer, now)) + size * 8 / (spec.bandwidth_mbit * 1e6)
            self._free_at[peer] = depart
        delay_s = spec.delay_ms / 1000
        if spec.jitter_ms:
            delay_s += rng.uniform(-spec.jitter_ms, spec.jitter_ms) / 1000
        # strictly after the previous one: the loop's timer heap does not keep equal deadlines in order
        arrive = max(depart + max(0.0, delay_s), self._last_arrival.get(peer, -1.0) + 1e-6)
        self._last_arrival[peer] = arrive
        if arrive <= now:
            return self.inner.send(peer, frames)
        handle: asyncio.TimerHandle | None = None

        def _deliver() -> None:
            if handle is not None:
                self._pending.discard(handle)
            if not self.inner.send(peer, frames):
                self.refused += 1

        handle = loop.call_at(arrive, _deliver)
        self._pending.add(handle)
        return True

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        return [peer for peer in peers if not self.send(peer, frames)]  # each link its own delay and loss

    async def close(self) -> None:
        """Let what is in flight on an emulated link arrive (at most ``FLUSH_S``), then close the real transport.

        On a real network a message already on the wire still arrives after its sender closed; dropping
        the delayed ones here would make every node's last model (and its bye) vanish.
        """
        if self._pending:
            loop = asyncio.get_running_loop()
            last = max(h.when() for h in self._pending)
            await asyncio.sleep(min(FLUSH_S, max(0.0, last - loop.time())) + 0.001)
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        await self.inner.close()


def emulate_links(inner: Transport, me: int, topology: Topology, cfg: LinksConfig, *, seed: int = 0) -> Transport:
    """``inner`` wrapped in a :class:`LinkEmulator` when some out-link of ``me`` is shaped, else ``inner`` itself."""
    specs = link_specs(me, topology, cfg)
    return LinkEmulator(inner, me, specs, seed=seed) if specs else inner
