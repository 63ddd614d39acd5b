"""The handover of a same-host ring: the sender's offer, the receiver's checks, and the releases that come back.

:mod:`gossip.net.shm` explains the protocol; this module holds its wire (an offer, one answer byte, four-byte
releases, over ``SOCK_SEQPACKET`` in Linux's abstract namespace) and the receiving side: :class:`RingIntake`
listens, checks every offer, maps what it accepts read-only, and tells a sender which slots it has copied out.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import logging
import os
import secrets
import socket
import stat
import struct
import threading

from gossip.ids import NodeId
from gossip.net.rings import MAX_SLOTS, MIN_SLOTS, Geometry, ReceiveRing, SendRing

__all__ = ["ACCEPTED", "MAGIC", "OFFER", "RELEASE", "RingIntake", "new_ring", "offer_ring", "ring_socket_name"]

log = logging.getLogger("gossip.node")

HANDOVER_TIMEOUT_S = 2.0  # the longest a handover may keep either side waiting
OFFER = struct.Struct("<8s8sIIIIQ")  # magic, run id, src, dst, generation, slots, slot bytes
MAGIC = b"gossipRG"
ACCEPTED, REFUSED = b"\x01", b"\x00"
RELEASE = struct.Struct("<I")  # receiver to sender, on the handover connection: "I copied this slot out"
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def ring_socket_name(run_id: bytes, node: int, address: str) -> bytes:
    """The abstract Unix socket a node takes rings on: unique per run, node and address (two runs never meet)."""
    digest = hashlib.sha256(b"%s|%d|%s" % (run_id, node, address.encode())).hexdigest()[:32]
    return b"\0gossip-ring-" + digest.encode()


def new_ring(slots: int, slot_bytes: int) -> SendRing:
    """A sender's ring of ``slots`` models of ``slot_bytes``, sealed against resizing, with a random generation."""
    ring = SendRing(Geometry(slots, slot_bytes), generation=secrets.randbits(32))
    assert ring.fd is not None
    fcntl.fcntl(ring.fd, fcntl.F_ADD_SEALS, _SEALS)
    return ring


def offer_ring(name: bytes, ring: SendRing, offer: bytes) -> tuple[socket.socket | None, bool]:
    """Hand ``ring`` to the receiver listening at ``name``: its connection (non-blocking, for releases) once it
    accepted, else None; and whether a receiver was there to refuse (nobody listening: another host, or not yet)."""
    assert ring.fd is not None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    conn.settimeout(HANDOVER_TIMEOUT_S)
    try:
        conn.connect(name)
    except OSError:
        conn.close()
        return None, False
    try:
        socket.send_fds(conn, [offer], [ring.fd])
        answer = conn.recv(1)
    except OSError:
        answer = b""
    if answer != ACCEPTED:
        conn.close()
        return None, True
    conn.setblocking(False)  # from here on it is read only for releases, never waited on
    return conn, False


class _Refused(Exception):
    def __init__(self, src: int | None, detail: str) -> None:
        super().__init__(detail)
        self.src = src


class RingIntake:
    """The receiving side: a listener thread that takes neighbours' rings, and the releases sent back for them."""

    def __init__(self, run_id: bytes, me: NodeId, name: bytes, senders: frozenset[int], slot_bytes: int) -> None:
        self.run_id = run_id
        self.me = me
        self.name = name
        self.slot_bytes = slot_bytes
        self._senders = senders
        self.rings: dict[int, ReceiveRing] = {}  # written by the listener thread, read by the event loop
        self._conns: dict[int, socket.socket] = {}
        self.refusals: collections.deque[int | None] = collections.deque(maxlen=1024)  # refused offers, to count
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._said: set[str] = set()

    def start(self) -> None:
        """Listen (a name taken means another process of this run at this address: stay on TCP, and say so)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            listener.bind(self.name)
            listener.listen(16)
        except OSError as exc:
            listener.close()
            log.warning("node %s: no same-host shared memory (%s): models come through ZeroMQ", self.me, exc.strerror)
            return
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name=f"gossip-rings-{self.me}", daemon=True)
        self._thread.start()

    def release(self, sender: int | None, ring: ReceiveRing, ref: bytes) -> None:
        """Tell the sender we are done with the slot the reference names (copied out, or refused): it may write it again."""
        slot = ring.slot_of(ref)
        conn = self._conns.get(sender) if sender is not None else None
        if slot is not None and conn is not None:
            try:
                conn.send(RELEASE.pack(slot), socket.MSG_DONTWAIT)
            except OSError:  # the sender is gone, or not reading: it stops using the ring either way
                pass

    def _accept_loop(self) -> None:
        """The listener thread: take one offer per connection, answer it, keep the connection of an accepted ring."""
        listener = self._listener
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the transport is closing
                return
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        conn.settimeout(HANDOVER_TIMEOUT_S)
        fds: list[int] = []
        try:
            message, fds, _flags, _addr = socket.recv_fds(conn, OFFER.size + 1, 2)
            src, ring = self._check(conn, message, fds)
        except (_Refused, OSError) as exc:
            for fd in fds:
                os.close(fd)
            who = exc.src if isinstance(exc, _Refused) else None
            self.refusals.append(who)
            self.say_once(str(exc), "node %s: refused a shared-memory ring from %s: %s", who, exc)
            try:
                conn.send(REFUSED)
            except OSError:
                pass
            conn.close()
            return
        os.close(fds[0])  # the mapping holds the memory now
        self.rings[src] = ring  # replaces the ring of an earlier process of that node: its references fail
        old = self._conns.pop(src, None)
        self._conns[src] = conn  # before the answer: the sender's first reference may follow at once
        if old is not None:
            old.close()
        conn.send(ACCEPTED)
        conn.setblocking(False)  # releases are sent from the event loop: never wait on a full buffer

    def _check(self, conn: socket.socket, message: bytes, fds: list[int]) -> tuple[int, ReceiveRing]:
        """An offer's ring, mapped read-only, once every check holds; :class:`_Refused` naming the first that failed."""
        _pid, uid, _gid = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
        if uid != os.getuid():
            raise _Refused(None, f"offered by a process of user {uid}")
        if len(message) != OFFER.size or len(fds) != 1:
            raise _Refused(None, "a malformed offer")
        magic, run_id, src, dst, generation, slots, slot_bytes = OFFER.unpack(message)
        who = src if src in self._senders else None
        if magic != MAGIC or run_id != self.run_id or dst != self.me:
            raise _Refused(who, "an offer for another run or node")
        if who is None:
            raise _Refused(None, f"an offer from node {src}, not a neighbour")
        geometry = Geometry(slots, slot_bytes)
        if not MIN_SLOTS <= slots <= MAX_SLOTS or slot_bytes != self.slot_bytes:
            raise _Refused(src, f"a ring of {slots} slots of {slot_bytes} bytes for a model of {self.slot_bytes}")
        info = os.fstat(fds[0])
        if not stat.S_ISREG(info.st_mode) or info.st_size != geometry.size:
            raise _Refused(src, "a descriptor that is not a ring of the offered size")
        try:
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
        except OSError:
            seals = 0
        if seals & _SEALS != _SEALS:
            raise _Refused(src, "a ring that is not sealed against resizing")
        return src, ReceiveRing(fds[0], geometry, generation)

    def say_once(self, key: str, text: str, *args: object) -> None:
        """Log ``text`` (its first argument this node's id) once per ``key``: a refusal repeats every retry."""
        if key not in self._said:
            self._said.add(key)
            log.warning(text, self.me, *args)

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept
            except OSError:
                pass
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=HANDOVER_TIMEOUT_S + 1)
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        for ring in self.rings.values():
            ring.close()
        self.rings.clear()
