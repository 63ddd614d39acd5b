"""Models between nodes on one host through shared memory; ZeroMQ carries only the header and a slot reference.

:class:`SharedMemoryTransport` wraps the ZeroMQ transport. A sender has one ring (:mod:`gossip.net.rings`),
which every neighbour on its host maps: a model is copied once into a slot, however many of them it goes to
(:meth:`SharedMemoryTransport.send_all`), and each message becomes three frames,
``[header, b"", reference]``, which no wire message has, so the receiving wrapper tells them apart before
anything is decoded. It copies the slot out (the one copy on its side) and hands the usual
``[header, payload]`` to :mod:`gossip.net.wire`, which validates it as it would a model from TCP: sender,
run, fingerprint, round, size, finiteness. Everything else (hellos, byes, small or oversized frames,
messages to other hosts) goes through ZeroMQ unchanged.

How a peer is found to be local, without configuration: every receiver listens on a Unix socket in
Linux's abstract namespace, named from the run id, its id and the address peers know it by
(:func:`ring_socket_name`). Such a name is reachable only from the same host and network namespace, so a
sender that can connect to it shares the machine; one on another host (or another container) cannot, and
keeps to TCP. A sender tries before its first model to a neighbour and again at most every ``RETRY_S``.

The handover (``SOCK_SEQPACKET``): the sender creates its ring once, seals its size (a ring that could shrink
would crash its reader with SIGBUS), and sends an offer — run id, its id, ours, a random generation, the
geometry — with the ring's descriptor attached. The receiver refuses, and counts as ``bad_slot``, an
offer from a process of another user (``SO_PEERCRED``), of another run, for another node, from a node
that is not its neighbour, of another geometry than its own model's, or a descriptor that is not a
sealed file of the ring's exact size; it maps an accepted ring read-only. The connection stays open, and
carries the other half of the protocol, ownership: a receiver that has copied a slot out (or refused it)
says so (``RELEASE``); a sender writes only a slot no receiver still holds an unread reference to, and sends
a model through ZeroMQ when every slot is held (a receiver that stopped reading), so an honest slot is never
overwritten before it is read. A sender sees its receiver go (a crash, a restart) and sends through TCP
until a new receiver takes the ring; a sender that restarts hands over a new ring, which replaces the old one.

Trust: a ring is read only on a reference from the sender ZeroMQ names, in the ring that sender handed
over, at the slot and sequence number the reference gives, and copied before use. A process of the same
user can still offer a ring under a neighbour's id, as it could send under that id over TCP; the boundary
is the user account, which could read a node's memory anyway. ``[security] curve`` authenticates peers
by key, which a ring handover cannot prove, so a node with CURVE never uses this path.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gossip.errors import RejectReason
from gossip.ids import NodeId
from gossip.net.handover import MAGIC, OFFER, RELEASE, RingIntake, new_ring, offer_ring, ring_socket_name
from gossip.net.payload import byte_view
from gossip.net.rings import MIN_SLOTS, SendRing
from gossip.net.transport import Received, Transport

__all__ = ["MIN_BYTES", "RETRY_S", "SharedMemoryTransport", "ring_socket_name"]  # the name: tests and tools that find a node

log = logging.getLogger("gossip.node")

# smaller payloads go through ZeroMQ: below about a MiB the ring's fixed costs (a poll, a release each way, a
# third frame) outweigh the kernel copies it saves (bench/round_time.py: 15k parameters 1.2x slower through a
# ring, 68k-255k even, 1M parameters 0.92x)
MIN_BYTES = 1 << 20
RETRY_S = 1.0  # a sender asks a neighbour that did not take a ring again at most this often


@dataclass
class _Outbound:
    """A sender's state towards one neighbour: the handover connection while it holds our ring, or when to try again."""

    name: bytes
    conn: socket.socket | None = None
    next_try: float = 0.0


class SharedMemoryTransport:
    """A :class:`~gossip.net.transport.Transport` that moves models to and from same-host neighbours through rings."""

    def __init__(
        self,
        inner: Transport,
        *,
        run_id: bytes,
        me: NodeId,
        address: str,
        peers: Mapping[NodeId, str],
        slot_bytes: int,
        slots: int = MIN_SLOTS,
    ) -> None:
        self.inner = inner
        self.slots = slots
        self.run_id = run_id
        self.me = me
        self.slot_bytes = slot_bytes
        self._out = {peer: _Outbound(ring_socket_name(run_id, int(peer), a)) for peer, a in peers.items()}
        self._ring: SendRing | None = None  # ours, one for every neighbour: a model sent to several is written once
        self._held: list[set[NodeId]] = [set() for _ in range(slots)]  # who holds an unread reference to each slot
        self._watch = select.poll()  # the handover connections: releases, and the end of a receiver
        self._by_fd: dict[int, NodeId] = {}
        self.intake = RingIntake(run_id, me, ring_socket_name(run_id, int(me), address), frozenset(int(p) for p in peers), slot_bytes)
        self.sent = 0
        self.received = 0

    @property
    def zero_copy(self) -> bool:
        return self.inner.zero_copy  # a frame that goes to a ring is copied inside send, which is all zero_copy allows

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    @property
    def in_memory(self) -> tuple[int, int]:
        return self.sent, self.received

    def __getattr__(self, name: str) -> Any:  # bound_address, on_refused, ...: the ZeroMQ transport's
        return getattr(self.inner, name)

    async def start(self) -> None:
        """Listen for rings first, so a neighbour that hears our hello can hand one over at once; then ZeroMQ."""
        self.intake.start()
        await self.inner.start()

    def connect(self, peer: NodeId, address: str) -> None:
        self.inner.connect(peer, address)

    def drop_queued(self, peers: Sequence[NodeId]) -> None:
        self.inner.drop_queued(peers)

    # -- sending -------------------------------------------------------------------------------

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        return not self.send_all((peer,), frames)

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        """One message to each of ``peers``; those that hold our ring get a reference to one slot written once.

        A slot is written only when no neighbour still holds an unread reference to it (each receiver tells us
        when it has copied a slot out); with none free, the model goes through ZeroMQ like any other message.
        """
        slot, holders = None, []
        if len(frames) == 2 and MIN_BYTES <= byte_view(frames[1]).nbytes <= self.slot_bytes:
            self._collect_releases()
            holders = [peer for peer in peers if self._takes_rings(peer)]
            slot = self._free_slot() if holders else None
        ref, held = b"", None
        if slot is not None and self._ring is not None:
            ref, held = self._ring.write(frames[1], slot), self._held[slot]
        unsent = []
        for peer in peers:
            if held is not None and peer in holders:
                held.add(peer)
                ok = self.inner.send(peer, [frames[0], b"", ref])
                if ok:
                    self.sent += 1
                else:
                    held.discard(peer)
            else:
                ok = self.inner.send(peer, frames)
            if not ok:
                unsent.append(peer)
        return unsent

    def _free_slot(self) -> int | None:
        """The next slot in turn that nobody holds a reference to, or None."""
        start = self._ring._next if self._ring is not None else 0
        for k in range(self.slots):
            slot = (start + k) % self.slots
            if not self._held[slot]:
                return slot
        return None

    def _collect_releases(self) -> None:
        """Read the slots receivers say they copied out; forget a receiver whose connection ended."""
        for fd, _event in self._watch.poll(0) if self._by_fd else ():
            peer = self._by_fd[fd]
            conn = self._out[peer].conn
            assert conn is not None
            while True:
                try:
                    message = conn.recv(RELEASE.size + 1, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    message = b""
                if len(message) != RELEASE.size:  # the end of the receiver (or a broken protocol): TCP for now
                    self._forget(peer)
                    break
                slot = RELEASE.unpack(message)[0]
                if slot < self.slots:
                    self._held[slot].discard(peer)

    def _takes_rings(self, peer: NodeId) -> bool:
        """Whether ``peer`` holds our ring: while its handover connection lives, or once it takes the ring now."""
        out = self._out.get(peer)
        if out is None:
            return False
        if out.conn is not None:
            return True
        now = time.monotonic()
        if now < out.next_try:
            return False
        out.next_try = now + RETRY_S
        self._offer(peer, out)
        return out.conn is not None

    def _offer(self, peer: NodeId, out: _Outbound) -> None:
        if self._ring is None:
            self._ring = new_ring(self.slots, self.slot_bytes)
        ring = self._ring
        offer = OFFER.pack(MAGIC, self.run_id, int(self.me), int(peer), ring.generation, self.slots, self.slot_bytes)
        conn, refused = offer_ring(out.name, ring, offer)
        if refused:
            self.intake.say_once(f"refused{peer}", "node %s: neighbour %s refused a shared-memory ring: models go through ZeroMQ", peer)
        if conn is None:
            return
        out.conn = conn
        self._by_fd[conn.fileno()] = peer
        self._watch.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _forget(self, peer: NodeId) -> None:
        """A receiver that went: its references die with it, and it is offered the ring again after a while."""
        out = self._out[peer]
        if out.conn is not None:
            self._by_fd.pop(out.conn.fileno(), None)
            self._watch.unregister(out.conn)
            out.conn.close()
            out.conn = None
        out.next_try = time.monotonic() + RETRY_S
        for held in self._held:
            held.discard(peer)

    # -- receiving -----------------------------------------------------------------------------

    async def recv(self) -> Received:
        intake = self.intake
        if intake.refusals:  # rings the listener refused: counted by the node like any refused message
            return Received(intake.refusals.popleft(), [], 0, refused=RejectReason.BAD_SLOT)
        received = await self.inner.recv()
        frames = received.frames
        if len(frames) != 3 or len(frames[1]) != 0:
            return received
        ring = intake.rings.get(received.sender) if received.sender is not None else None
        if ring is None:
            return Received(received.sender, [], received.nbytes, refused=RejectReason.BAD_SLOT)
        ref = bytes(frames[2])
        payload = ring.read(ref)
        intake.release(received.sender, ring, ref)
        if isinstance(payload, RejectReason):
            return Received(received.sender, [], received.nbytes, refused=payload)
        self.received += 1
        return Received(received.sender, [frames[0], memoryview(payload)], received.nbytes + payload.size)  # type: ignore[arg-type]  # numpy arrays export the buffer protocol

    async def close(self) -> None:
        """Close ZeroMQ (its last references still reach rings the receivers map), then every ring and socket."""
        await self.inner.close()
        self.intake.close()
        for peer in list(self._by_fd.values()):
            self._forget(peer)
        if self._ring is not None:
            self._ring.close()
            self._ring = None
