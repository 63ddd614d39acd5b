"""Move frames between nodes: the ``Transport`` seam, and an in-memory double for unit tests.

The node loop sees a network only through :class:`Transport`: start, connect, send, receive, close,
and three things a node must know about *how* its messages leave — whether the transport reads a sent
buffer after ``send`` returns (``zero_copy``: the node must not write it until released), how to drop
what is still queued to peers that stopped reading (``drop_queued``), and how many messages it lost on
purpose (``dropped``, link emulation). ZeroMQ is the real one (:mod:`gossip.net.zeromq`); the link
emulator (:mod:`gossip.net.linkemu`) wraps either; :class:`InMemoryTransport` is the double.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gossip.errors import RejectReason
from gossip.ids import NodeId

__all__ = ["InMemoryNetwork", "InMemoryTransport", "Received", "Transport"]


@dataclass(frozen=True)
class Received:
    """One inbound message as the transport saw it."""

    sender: int | None  # node id the transport vouches for; None if the identity is not a node id
    frames: list[Any]  # bytes, memoryview or zmq.Frame; decoded by gossip.net.wire (empty: too many frames)
    nbytes: int
    refused: RejectReason | None = None  # the transport itself refused it (a bad shared-memory reference): count, drop


class Transport(Protocol):
    """What the node loop needs from a network: start, send to a peer, receive from anybody, close."""

    @property
    def zero_copy(self) -> bool:
        """Whether a sent buffer is read after ``send`` returns: then the sender must not write it until released."""
        ...

    @property
    def dropped(self) -> int:
        """Messages this transport lost on purpose so far (emulated loss); the sender could not tell."""
        ...

    @property
    def in_memory(self) -> tuple[int, int]:
        """Models sent and received through same-host shared memory so far (:mod:`gossip.net.shm`); (0, 0) elsewhere."""
        ...

    async def start(self) -> None: ...

    def connect(self, peer: NodeId, address: str) -> None: ...

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        """Queue a message for ``peer``; ``False`` if it was dropped (peer down or its queue full)."""
        ...

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        """:meth:`send` to each of ``peers`` (a round's model to every neighbour); the peers it was dropped for."""
        ...

    def drop_queued(self, peers: Sequence[NodeId]) -> None:
        """Discard what is still queued to ``peers`` and open their links afresh (a no-op where nothing queues)."""
        ...

    async def recv(self) -> Received: ...

    async def close(self) -> None: ...


class InMemoryNetwork:
    """A hub of asyncio queues, one per node, for fast single-process tests of the node loop.

    ``drop`` (probability) and ``delay_s`` inject faults; ``down`` holds nodes whose messages vanish.
    Only a unit-test double: features are done when they also pass over :class:`~gossip.net.zeromq.ZmqTransport`.
    """

    def __init__(self, *, drop: float = 0.0, delay_s: float = 0.0, seed: int = 0) -> None:
        self.queues: dict[int, asyncio.Queue[Received]] = {}
        self.drop = drop
        self.delay_s = delay_s
        self.down: set[int] = set()
        self._rng = random.Random(seed)

    def transport(self, me: NodeId) -> InMemoryTransport:
        return InMemoryTransport(self, me)

    def deliver(self, src: int, dst: int, frames: Sequence[Any]) -> bool:
        queue = self.queues.get(dst)
        if queue is None or dst in self.down or src in self.down:
            return False
        if self.drop and self._rng.random() < self.drop:
            return True  # lost on the wire: the sender cannot tell
        copied = [bytes(f) for f in frames]
        message = Received(src, copied, sum(len(f) for f in copied))
        if self.delay_s:
            asyncio.get_running_loop().call_later(self.delay_s, queue.put_nowait, message)
        else:
            queue.put_nowait(message)
        return True


class InMemoryTransport:
    """The in-memory :class:`Transport`: same contract as ZeroMQ, no sockets."""

    zero_copy = False  # frames are copied into the receiver's queue inside send
    dropped = 0  # what InMemoryNetwork.drop loses is the network's, as on a real wire
    in_memory = (0, 0)

    def __init__(self, network: InMemoryNetwork, me: NodeId) -> None:
        self.network = network
        self.me = me

    async def start(self) -> None:
        self.network.queues[self.me] = asyncio.Queue()

    def connect(self, peer: NodeId, address: str) -> None:
        return None

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        return self.network.deliver(self.me, peer, frames)

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        return [peer for peer in peers if not self.send(peer, frames)]

    def drop_queued(self, peers: Sequence[NodeId]) -> None:
        return None  # delivered at once: nothing waits in a queue of ours

    async def recv(self) -> Received:
        return await self.network.queues[self.me].get()

    async def close(self) -> None:
        self.network.queues.pop(self.me, None)
