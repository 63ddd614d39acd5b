"""The sender-side link emulator: loss rate, delay, jitter and bandwidth, on a recording inner transport."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gossip.config import LinksConfig
from gossip.errors import TopologyError
from gossip.ids import NodeId
from gossip.net.linkemu import LinkEmulator, LinkSpec, emulate_links, link_specs
from gossip.net.transport import Received
from gossip.topology import Topology, generate, load

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


class _Recorder:
    """An inner transport that records (loop time, peer, size) of every send it is handed."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, int, int]] = []

    async def start(self) -> None: ...

    def connect(self, peer: NodeId, address: str) -> None: ...

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        self.sent.append((asyncio.get_running_loop().time(), int(peer), sum(len(f) for f in frames)))
        return True

    async def recv(self) -> Received:
        raise NotImplementedError

    async def close(self) -> None: ...


def _run(
    spec: LinkSpec, messages: int, size: int = 100, seed: int = 0, gap_s: float = 0.0
) -> tuple[LinkEmulator, list[float], list[float]]:
    """Send ``messages`` to peer 1 through the emulator; returns it, the send times and the hand-over times."""
    inner = _Recorder()
    emu = LinkEmulator(inner, 0, {NodeId(1): spec}, seed=seed)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        starts = []
        for _ in range(messages):
            starts.append(loop.time())
            assert emu.send(NodeId(1), [b"h", b"x" * (size - 1)])
            if gap_s:
                await asyncio.sleep(gap_s)
        await asyncio.sleep(0.5)
        return starts

    starts = asyncio.run(main())
    return emu, starts, [t for t, _p, _n in inner.sent]


def test_loss_drops_the_configured_fraction_reproducibly() -> None:
    """loss = 0.3 over 4000 messages drops 30 % ± 3 points, the same messages for the same seed, others for another."""
    emu, _s, delivered = _run(LinkSpec(loss=0.3), 4000)
    assert 0.27 <= emu.dropped / 4000 <= 0.33
    assert len(delivered) + emu.dropped == 4000
    again, _s, _d = _run(LinkSpec(loss=0.3), 4000)
    other, _s, _d = _run(LinkSpec(loss=0.3), 4000, seed=1)
    assert again.dropped == emu.dropped and other.dropped != emu.dropped


def test_delay_and_jitter_hold_each_message_within_bounds() -> None:
    """delay 60 ms ± 20 ms jitter: every message is handed over between 40 and 80 ms (+ scheduling slack) after
    it was sent, and the delays actually vary."""
    _emu, starts, delivered = _run(LinkSpec(delay_ms=60, jitter_ms=20), 40, gap_s=0.002)
    delays = sorted(d - s for s, d in zip(starts, sorted(delivered), strict=True))
    assert len(delivered) == 40
    assert delays[0] >= 0.039 and delays[-1] <= 0.080 + 0.05
    assert delays[-1] - delays[0] > 0.01


def test_bandwidth_serialises_messages_on_the_link() -> None:
    """1 Mbit/s and 2500-byte messages: each occupies the link 20 ms, so 10 sent at once leave 20 ms apart and the
    last one 200 ms after the first send."""
    _emu, starts, delivered = _run(LinkSpec(bandwidth_mbit=1.0), 10, size=2500)
    assert len(delivered) == 10
    # lower bounds only: a loaded machine can deliver late, never early
    for i, at in enumerate(delivered):
        assert at - starts[0] >= 0.020 * (i + 1) - 0.001, f"message {i} left the link before its serialisation ended"


def test_link_specs_come_from_edge_attributes_then_the_config() -> None:
    """wan-8's edges carry their own attributes; [links] values fill in for edges without them, and
    enabled = false ignores the file's; a plain graph with no [links] values is not wrapped at all."""
    wan = load(TOPOLOGIES / "wan-8.graphml")
    me = 0
    specs = link_specs(me, wan, LinksConfig())
    for j in wan.neighbours(me):
        attrs = wan.edge_attributes(me, j)
        assert specs[NodeId(j)].delay_ms == attrs["delay_ms"] and specs[NodeId(j)].loss == attrs["loss"]
    ring = generate("ring", 4)
    assert link_specs(0, ring, LinksConfig()) == {}
    assert link_specs(0, ring, LinksConfig(delay_ms=100)) == {NodeId(1): LinkSpec(delay_ms=100), NodeId(3): LinkSpec(delay_ms=100)}
    assert all(s.delay_ms == 7 for s in link_specs(me, wan, LinksConfig(enabled=False, delay_ms=7)).values())
    inner = _Recorder()
    assert emulate_links(inner, 0, ring, LinksConfig()) is inner
    assert isinstance(emulate_links(inner, 0, ring, LinksConfig(loss=0.1)), LinkEmulator)


def test_bad_edge_attributes_are_refused_with_the_edge_named() -> None:
    """A loss above 1 on an edge is a TopologyError naming the edge."""
    ring = Topology.from_edges(3, [(0, 1, {"loss": 1.5}), (1, 2), (0, 2)], "ring-3")
    with pytest.raises(TopologyError, match=r"edge \(0, 1\): loss"):
        link_specs(0, ring, LinksConfig())


def test_jitter_never_reorders_a_link() -> None:
    """A link is one TCP connection: with jitter as large as the delay, messages still arrive in the order sent."""
    inner = _Recorder()
    emu = LinkEmulator(inner, 0, {NodeId(1): LinkSpec(delay_ms=20, jitter_ms=20)}, seed=3)

    async def main() -> None:
        for k in range(50):
            emu.send(NodeId(1), [b"x" * (k + 1)])
            await asyncio.sleep(0.001)
        await emu.close()

    asyncio.run(main())
    assert [n for _t, _p, n in inner.sent] == list(range(1, 51))  # close() waited for all of them
