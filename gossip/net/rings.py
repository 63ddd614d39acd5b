"""A ring of model slots in shared memory: written by one sender, read by its neighbours on the same host.

Why: over loopback TCP a model crosses the kernel twice (the sender's socket buffer, the
receiver's), and ZeroMQ copies it again into its receive message. Here the sender copies its model into a
slot once (once for all its neighbours), ZeroMQ carries only a 24-byte reference, and each receiver copies
the slot into its own buffer once — after which nothing the sender (or anybody) writes can change what the receiver validated and mixes.

The memory is a ``memfd``: it has no name in ``/dev/shm``, the receiver gets it as a file descriptor over a
Unix socket (:mod:`gossip.net.shm`) and maps it read-only, and the kernel frees it when the last process
holding it is gone, so a run that ends, crashes or is stopped with Ctrl-C leaves no segment behind.

Layout: ``slots`` headers of ``HEADER_BYTES`` (two little-endian u64 words: ``seq``, ``nbytes``), padded to a
page, then ``slots`` payloads, each ``slot_bytes`` rounded up to a page. How many slots: :func:`slots_for`.

Torn writes (a seqlock): the sender makes the slot's ``seq`` odd, copies the payload, writes ``nbytes``,
then makes ``seq`` the next even number, and only then sends the reference (slot, ring generation, seq,
nbytes). The receiver checks ``seq`` and ``nbytes`` against the reference, copies, and checks ``seq`` again.
A sender killed mid-write never sent the reference of that write, and an older reference to the slot names
a ``seq`` the slot no longer holds; a slot rewritten while it is copied changes ``seq`` under the copy. The
receiver refuses both (:attr:`~gossip.errors.RejectReason.TORN_SLOT`) instead of reading a torn model.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from gossip.errors import RejectReason
from gossip.net.payload import byte_view

__all__ = ["HEADER_BYTES", "MAX_SLOTS", "MIN_SLOTS", "REF", "Geometry", "ReceiveRing", "SendRing", "slots_for"]

MIN_SLOTS, MAX_SLOTS = 4, 34
HEADER_BYTES = 64  # a cache line per slot header: the two words, and no sharing with the next slot's
REF = struct.Struct("<IIQQ")  # slot, ring generation, seq, nbytes: what travels over ZeroMQ instead of the model
_PAGE = mmap.PAGESIZE


def slots_for(rounds_ahead: int) -> int:
    """Slots enough that a synchronous round's model usually finds one free.

    A sender is at most ``rounds_ahead`` rounds (``[transport] max_rounds_ahead``) past a receiver that keeps
    up, so the receiver may still hold that many unread references, plus the one it reads and the one being
    written. A slot still held is never written (:class:`gossip.net.shm.SharedMemoryTransport`); a model that
    finds none free goes through ZeroMQ.
    """
    return min(MAX_SLOTS, max(MIN_SLOTS, rounds_ahead + 2))


def _pages(nbytes: int) -> int:
    return -(-nbytes // _PAGE) * _PAGE


@dataclass(frozen=True)
class Geometry:
    """The shape of a ring: how many slots and how large a payload each holds."""

    slots: int
    slot_bytes: int

    @property
    def stride(self) -> int:
        """Bytes from one payload to the next (page-aligned, so a copy starts on a page)."""
        return _pages(self.slot_bytes)

    @property
    def headers_bytes(self) -> int:
        return _pages(self.slots * HEADER_BYTES)

    @property
    def size(self) -> int:
        """Bytes of the whole ring (the memfd's size: a receiver refuses a ring of any other size)."""
        return self.headers_bytes + self.slots * self.stride

    def offset(self, slot: int) -> int:
        return self.headers_bytes + slot * self.stride


class SendRing:
    """The sender's side: a fresh memfd, mapped read-write, written slot after slot; every neighbour maps it."""

    def __init__(self, geometry: Geometry, generation: int) -> None:
        self.geometry = geometry
        self.generation = generation
        self.fd: int | None = os.memfd_create("gossip-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, geometry.size)
        self._map = mmap.mmap(self.fd, geometry.size)
        self._words = np.frombuffer(self._map, dtype="<u8", count=geometry.slots * HEADER_BYTES // 8)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._next = 0
        self._seq = 0  # the last even seq handed out; a u64 never wraps in practice

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.geometry.slot_bytes

    def write(self, payload: Any, slot: int | None = None) -> bytes:
        """Copy ``payload`` (any byte buffer: bytes, memoryview, a zmq.Frame) into ``slot`` (default: the one after the
        last written); its reference."""
        source = np.frombuffer(byte_view(payload), dtype=np.uint8)
        n = source.size
        if slot is None:
            slot = self._next
        self._next = (slot + 1) % self.geometry.slots
        self._seq += 2
        word = slot * (HEADER_BYTES // 8)
        start = self.geometry.offset(slot)
        self._words[word] = self._seq - 1  # odd: being written
        np.copyto(self._bytes[start : start + n], source)
        self._words[word + 1] = n
        self._words[word] = self._seq  # even: whole (x86 keeps stores in order; the send below is a syscall)
        return REF.pack(slot, self.generation, self._seq, n)

    def close(self) -> None:
        """Close the descriptor (kept to hand the ring to a neighbour that restarts) and unmap the ring."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if not self._map.closed:
            del self._words, self._bytes  # the views must go before the map can close
            self._map.close()


class ReceiveRing:
    """The receiver's side: a sender's memfd mapped read-only; a slot is copied out only when its reference holds."""

    def __init__(self, fd: int, geometry: Geometry, generation: int) -> None:
        self.geometry = geometry
        self.generation = generation
        self._map = mmap.mmap(fd, geometry.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        self._words = np.frombuffer(self._map, dtype="<u8", count=geometry.slots * HEADER_BYTES // 8)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)

    def slot_of(self, ref: bytes) -> int | None:
        """The slot a reference names in this ring (None: not a reference to this ring), to tell its sender it is read."""
        if len(ref) != REF.size:
            return None
        slot, generation, _seq, _n = REF.unpack(ref)
        return slot if generation == self.generation and slot < self.geometry.slots else None

    def read(self, ref: bytes) -> np.ndarray | RejectReason:
        """The payload the reference names, as a private copy; or why it was refused.

        ``bad_slot``: a reference that cannot name a slot of this ring (size, index, generation, an odd seq).
        ``torn_slot``: the slot does not hold (or stopped holding, during the copy) the write the reference names.
        """
        if len(ref) != REF.size:
            return RejectReason.BAD_SLOT
        slot, generation, seq, n = REF.unpack(ref)
        geometry = self.geometry
        if generation != self.generation or slot >= geometry.slots or n > geometry.slot_bytes or seq == 0 or seq & 1:
            return RejectReason.BAD_SLOT
        word = slot * (HEADER_BYTES // 8)
        words = self._words
        if words[word] != seq or words[word + 1] != n:
            return RejectReason.TORN_SLOT
        start = geometry.offset(slot)
        copy = np.empty(n, dtype=np.uint8)
        np.copyto(copy, self._bytes[start : start + n])
        if words[word] != seq:  # rewritten while we copied
            return RejectReason.TORN_SLOT
        return copy

    def close(self) -> None:
        if not self._map.closed:
            del self._words, self._bytes
            self._map.close()
